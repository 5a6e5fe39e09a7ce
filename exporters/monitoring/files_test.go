package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	dashboardFile = "grafana-dashboard.json"
	alertsFile    = "prometheus-alerts.yml"
)

// query is one PromQL expression of the dashboard or the rules, with where
// it comes from for failure messages.
type query struct {
	where string // `panel "Sent" A`, `variable service`, `alert TracebusX`
	expr  string // as written in the file
	alert bool   // an alert expression: it must evaluate, it need not return data
}

type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title      string     `json:"title"`
	Type       string     `json:"type"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query any    `json:"query"` // a string, or {"query": "..."} for Prometheus query variables
}

// datasourceRef is how every panel and target names the data source: the
// dashboard's datasource variable, so the JSON imports as is anywhere.
const datasourceRef = "${datasource}"

// loadDashboard reads the dashboard and returns its panel and variable
// queries, checking on the way that it is importable as is: the data source
// is the datasource variable everywhere.
func loadDashboard(t *testing.T) (d dashboard, qs []query) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var hasDatasource bool
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			hasDatasource = v.Name == "datasource" && v.Query == "prometheus"
		case "query":
			expr, err := variableExpr(v)
			if err != nil {
				t.Errorf("%s: variable %s: %v", dashboardFile, v.Name, err)
				continue
			}
			qs = append(qs, query{where: "variable " + v.Name, expr: expr})
		}
	}
	if !hasDatasource {
		t.Errorf("%s: no datasource variable of type prometheus named datasource", dashboardFile)
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource.UID != datasourceRef {
				t.Errorf("%s: panel %q: data source %q, want %q", dashboardFile, p.Title, p.Datasource.UID, datasourceRef)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource.UID != datasourceRef {
					t.Errorf("%s: panel %q %s: data source %q, want %q", dashboardFile, p.Title, tg.RefID, tg.Datasource.UID, datasourceRef)
				}
				qs = append(qs, query{where: fmt.Sprintf("panel %q %s", p.Title, tg.RefID), expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return d, qs
}

var (
	queryResult = regexp.MustCompile(`(?s)^query_result\((.*)\)$`)
	labelValues = regexp.MustCompile(`(?s)^label_values\((.*),\s*(\w+)\)$`)
)

// variableExpr turns a Grafana Prometheus variable query into the PromQL it
// runs: query_result(expr) runs expr; label_values(selector, label) asks for
// the label's values on the selector's series, which count by (label)
// (selector) returns as well.
func variableExpr(v variable) (string, error) {
	q, ok := v.Query.(string)
	if m, isMap := v.Query.(map[string]any); isMap {
		q, ok = m["query"].(string)
	}
	if !ok {
		return "", fmt.Errorf("query %v is not a string or {query: string}", v.Query)
	}
	q = strings.TrimSpace(q)
	if m := queryResult.FindStringSubmatch(q); m != nil {
		return m[1], nil
	}
	if m := labelValues.FindStringSubmatch(q); m != nil {
		return fmt.Sprintf("count by (%s) (%s)", m[2], m[1]), nil
	}
	return "", fmt.Errorf("query %q: want query_result(...) or label_values(selector, label)", q)
}

// loadAlerts returns the expressions of the alert (and recording) rules.
func loadAlerts(t *testing.T) []query {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var qs []query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			name := "alert " + r.Alert
			if r.Record != "" {
				name = "record " + r.Record
			}
			qs = append(qs, query{where: name, expr: r.Expr, alert: true})
		}
	}
	if len(qs) == 0 {
		t.Fatalf("%s: no rules", alertsFile)
	}
	return qs
}

// grafanaBuiltins are the values the test gives Grafana's own variables:
// windows wide enough to hold several of the test's scrapes.
var grafanaBuiltins = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__range":         "5m",
}

var grafanaVar = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// substitute replaces Grafana's variables in expr: the dashboard's own by
// .* (what their All option sends), Grafana's by grafanaBuiltins. An
// unknown variable is an error: Grafana would leave it in the query.
func substitute(expr string, d dashboard) (string, error) {
	own := map[string]bool{}
	for _, v := range d.Templating.List {
		own[v.Name] = true
	}
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := grafanaBuiltins[name]; ok {
			return v
		}
		if own[name] {
			return ".*"
		}
		unknown = append(unknown, name)
		return m
	})
	if unknown != nil {
		return "", fmt.Errorf("unknown variables %q", unknown)
	}
	return out, nil
}
