package asyncapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"strings"
)

// page is what the HTML template shows, sorted for reading.
type page struct {
	Info       Info
	Servers    []pageServer
	Channels   []pageChannel
	Operations []pageOperation
	Schemas    []pageSchema
}

type pageServer struct {
	ID string
	*Server
}

type pageChannel struct {
	ID         string
	Address    string // "" for dynamic addresses
	Title      string
	Desc       string
	Servers    []string
	Parameters []pageParam
	Messages   []pageMessage
}

type pageParam struct{ Name, Desc string }

type pageMessage struct {
	ID, Title, ContentType string
	Description            string
	Payload, Key           string
	Schema                 string // the component the payload refers to, if any
}

type pageOperation struct {
	ID, Action, Channel, ChannelID string
	Title, Summary, Desc           string
	Messages, Reply                []string
	Bindings                       string
}

type pageSchema struct{ Name, Schema string }

func renderHTML(d *Document) ([]byte, error) {
	p := page{Info: d.Info}
	for _, id := range sortedKeys(d.Servers) {
		p.Servers = append(p.Servers, pageServer{id, d.Servers[id]})
	}
	for _, id := range sortedKeys(d.Channels) {
		c := d.Channels[id]
		pc := pageChannel{ID: id, Title: c.Title, Desc: c.Description}
		if c.Address != nil {
			pc.Address = *c.Address
		}
		for _, s := range c.Servers {
			pc.Servers = append(pc.Servers, strings.TrimPrefix(s.Ref, "#/servers/"))
		}
		for _, n := range sortedKeys(c.Parameters) {
			pc.Parameters = append(pc.Parameters, pageParam{n, c.Parameters[n].Description})
		}
		for _, mid := range sortedKeys(c.Messages) {
			m := c.Messages[mid]
			pm := pageMessage{ID: mid, Title: m.Title, ContentType: m.ContentType, Description: m.Description,
				Payload: indent(m.Payload), Schema: componentRef(m.Payload)}
			if m.Bindings != nil && m.Bindings.Kafka != nil {
				pm.Key = indent(m.Bindings.Kafka.Key)
			}
			pc.Messages = append(pc.Messages, pm)
		}
		p.Channels = append(p.Channels, pc)
	}
	for _, id := range sortedKeys(d.Operations) {
		o := d.Operations[id]
		po := pageOperation{ID: id, Action: o.Action, Title: o.Title, Summary: o.Summary, Desc: o.Description}
		po.ChannelID = strings.TrimPrefix(o.Channel.Ref, "#/channels/")
		po.Channel = po.ChannelID
		if c := d.Channels[po.ChannelID]; c != nil && c.Address != nil {
			po.Channel = *c.Address
		}
		po.Messages = refNames(o.Messages)
		if o.Reply != nil {
			po.Reply = refNames(o.Reply.Messages)
		}
		if o.Bindings != nil {
			b, err := json.Marshal(o.Bindings)
			if err != nil {
				return nil, fmt.Errorf("asyncapi: render HTML: %w", err)
			}
			po.Bindings = string(b)
		}
		p.Operations = append(p.Operations, po)
	}
	if d.Components != nil {
		for _, n := range sortedKeys(d.Components.Schemas) {
			p.Schemas = append(p.Schemas, pageSchema{n, indent(d.Components.Schemas[n])})
		}
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		return nil, fmt.Errorf("asyncapi: render HTML: %w", err)
	}
	return buf.Bytes(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// refNames returns the last element of each reference: the message ids.
func refNames(refs []Reference) []string {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Ref[strings.LastIndexByte(r.Ref, '/')+1:]
	}
	return names
}

// componentRef returns the components/schemas key that schema consists of a
// reference to, or "".
func componentRef(schema json.RawMessage) string {
	var r map[string]any
	if json.Unmarshal(schema, &r) != nil || len(r) != 1 {
		return ""
	}
	ref, _ := r["$ref"].(string)
	name, _ := strings.CutPrefix(ref, schemaRefPrefix)
	return name
}

func indent(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Info.Title}} {{.Info.Version}} – AsyncAPI</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.5rem;overflow:auto;font-size:.85rem}
code{font-size:.9rem}
section.channel{border-top:1px solid #ddd;margin-top:1rem}
.receive{color:#05610f}.send{color:#0b3d91}
</style>
</head>
<body>
<h1>{{.Info.Title}} <small>{{.Info.Version}}</small></h1>
{{with .Info.Description}}<p>{{.}}</p>{{end}}
<p>AsyncAPI 3.0.0 document: <a href="asyncapi.json">asyncapi.json</a> · <a href="asyncapi.yaml">asyncapi.yaml</a></p>

<h2>Servers</h2>
<table>
<tr><th>id</th><th>protocol</th><th>host</th><th>description</th></tr>
{{range .Servers}}<tr><td><code>{{.ID}}</code></td><td>{{.Protocol}}</td><td><code>{{.Host}}</code></td><td>{{.Description}}</td></tr>
{{end}}</table>

<h2>Operations</h2>
<table>
<tr><th>operation</th><th>action</th><th>channel</th><th>messages</th><th>reply</th><th>bindings</th><th>description</th></tr>
{{range .Operations}}<tr id="operation-{{.ID}}"><td><code>{{.ID}}</code></td><td class="{{.Action}}">{{.Action}}</td><td><a href="#channel-{{.ChannelID}}"><code>{{.Channel}}</code></a></td><td>{{range .Messages}}<code>{{.}}</code> {{end}}</td><td>{{range .Reply}}<code>{{.}}</code> {{end}}</td><td>{{with .Bindings}}<code>{{.}}</code>{{end}}</td><td>{{with .Title}}<strong>{{.}}</strong> {{end}}{{.Summary}} {{.Desc}}</td></tr>
{{end}}</table>

<h2>Channels</h2>
{{range .Channels}}<section class="channel" id="channel-{{.ID}}">
<h3><code>{{if .Address}}{{.Address}}{{else}}(reply address of each request){{end}}</code> <small>{{.ID}}</small></h3>
{{with .Title}}<p><strong>{{.}}</strong></p>{{end}}
{{with .Desc}}<p>{{.}}</p>{{end}}
<p>Servers: {{range .Servers}}<code>{{.}}</code> {{end}}</p>
{{with .Parameters}}<p>Parameters:</p><ul>{{range .}}<li><code>{{.Name}}</code>: {{.Desc}}</li>{{end}}</ul>{{end}}
{{range .Messages}}<h4>Message <code>{{.ID}}</code>{{with .Title}} <small>{{.}}</small>{{end}}</h4>
<p>Content type: {{if .ContentType}}<code>{{.ContentType}}</code>{{else}}unspecified{{end}}</p>
{{with .Description}}<p>{{.}}</p>{{end}}
<p>Payload{{with .Schema}} (schema <a href="#schema-{{.}}"><code>{{.}}</code></a>){{end}}:</p>
<pre>{{.Payload}}</pre>
{{with .Key}}<p>Kafka key:</p>
<pre>{{.}}</pre>{{end}}
{{end}}</section>
{{end}}

<h2>Schemas</h2>
{{range .Schemas}}<h3 id="schema-{{.Name}}"><code>{{.Name}}</code></h3>
<pre>{{.Schema}}</pre>
{{end}}
</body>
</html>
`))
