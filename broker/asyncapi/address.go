package asyncapi

import (
	"strconv"
	"strings"
)

// hasSubjectWildcards reports whether system matches destinations NATS
// style, with "*" and ">" tokens (NATS itself and the memory transport).
func hasSubjectWildcards(system string) bool {
	return system == "nats" || system == "memory"
}

// channelAddress turns a destination into a channel address with one
// parameter per parameter of a destination template ("{region}", a whole
// token) and, when wildcards is set (subject wildcards, see
// hasSubjectWildcards), per wildcard: "*" at token position n becomes
// "{tokenN}", a final ">" becomes "{rest}". Destinations without either are
// returned as they are, with no parameters.
func channelAddress(subject string, wildcards bool) (string, map[string]*Parameter) {
	tokens := strings.Split(subject, ".")
	var params map[string]*Parameter
	for i, tok := range tokens {
		var name, desc string
		switch {
		case len(tok) > 2 && tok[0] == '{' && tok[len(tok)-1] == '}':
			name = tok[1 : len(tok)-1]
			desc = "The " + name + " parameter of the destination: one token, at position " + strconv.Itoa(i+1) + "."
		case !wildcards:
			continue
		case tok == "*":
			name = "token" + strconv.Itoa(i+1)
			desc = "Any single token at position " + strconv.Itoa(i+1) + " of the subject (NATS wildcard *)."
		case tok == ">" && i == len(tokens)-1:
			name = "rest"
			desc = "One or more trailing tokens of the subject (NATS wildcard >)."
		default:
			continue
		}
		if params == nil {
			params = map[string]*Parameter{}
		}
		params[name] = &Parameter{Description: desc}
		tokens[i] = "{" + name + "}"
	}
	return strings.Join(tokens, "."), params
}

// patternAddress is the address of a destination that is a regular
// expression over names (kafkabroker.Pattern) rather than a name: an
// AsyncAPI address has no regular expressions, so it is one parameter,
// "{topic}" on Kafka, "{destination}" elsewhere, which the expression
// describes. patternDescription describes the channel the same way, unless
// DescribeChannel says otherwise.
func patternAddress(system, expr string) (*string, map[string]*Parameter) {
	name := patternParam(system)
	addr := "{" + name + "}"
	desc := "A " + name + " whose whole name matches the regular expression " + strconv.Quote(expr) + "."
	return &addr, map[string]*Parameter{name: {Description: desc}}
}

// patternDescription describes the channel of a pattern destination.
func patternDescription(system, expr string) string {
	return "Every " + patternParam(system) + " whose whole name matches the regular expression " + strconv.Quote(expr) + ", including those created later."
}

func patternParam(system string) string {
	if system == "kafka" {
		return "topic"
	}
	return "destination"
}
