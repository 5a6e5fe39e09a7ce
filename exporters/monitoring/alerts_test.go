package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// alertCases is a promtool rule test: one group of series past every
// default threshold, where each alert fires with exactly the labels
// documented, and one just inside them, where none fires. Series advance
// once a minute; the window covers each rule's for: duration.
const alertCases = `
rule_files: [RULES]
evaluation_interval: 1m
tests:
  - name: past the thresholds
    interval: 1m
    input_series:
      - series: 'tracebus_consumer_dead_lettered_messages_total{job="billing",messaging_system="nats",messaging_consumer_group_name="billing",error_type="validation"}'
        values: '0+1x40'
      - series: 'tracebus_consumer_dropped_messages_total{job="billing",messaging_system="nats",messaging_consumer_group_name="billing",tracebus_drop_reason="slow_consumer"}'
        values: '0x20 3+0x20'
      - series: 'tracebus_consumer_hung_messages_total{job="billing",messaging_system="nats",messaging_consumer_group_name="billing"}'
        values: '0x20 1+0x20'
      - series: 'messaging_process_duration_seconds_count{job="shipping",messaging_system="kafka",messaging_consumer_group_name="shipping"}'
        values: '0+90x40'
      - series: 'messaging_process_duration_seconds_count{job="shipping",messaging_system="kafka",messaging_consumer_group_name="shipping",error_type="_OTHER"}'
        values: '0+10x40'
      - series: 'messaging_client_operation_duration_seconds_count{job="billing",messaging_system="nats",messaging_operation_name="request"}'
        values: '0+90x40'
      - series: 'messaging_client_operation_duration_seconds_count{job="billing",messaging_system="nats",messaging_operation_name="request",error_type="timeout"}'
        values: '0+10x40'
      - series: 'messaging_process_duration_seconds_bucket{job="fraud",messaging_system="nats",messaging_consumer_group_name="fraud",le="1"}'
        values: '0+90x40'
      - series: 'messaging_process_duration_seconds_bucket{job="fraud",messaging_system="nats",messaging_consumer_group_name="fraud",le="2.5"}'
        values: '0+100x40'
      - series: 'messaging_process_duration_seconds_bucket{job="fraud",messaging_system="nats",messaging_consumer_group_name="fraud",le="+Inf"}'
        values: '0+100x40'
      - series: 'messaging_client_sent_messages_total{job="checkout",messaging_system="kafka",messaging_destination_name="orders"}'
        values: '0+10x40'
      - series: 'messaging_client_consumed_messages_total{job="shipping",messaging_system="kafka",messaging_destination_name="orders"}'
        values: '0x40'
    alert_rule_test:
      - {eval_time: 30m, alertname: TracebusDeadLettering, exp_alerts: [{exp_labels: {severity: warning, job: billing, messaging_system: nats, messaging_consumer_group_name: billing}}]}
      - {eval_time: 23m, alertname: TracebusMessagesDropped, exp_alerts: [{exp_labels: {severity: critical, job: billing, messaging_system: nats, messaging_consumer_group_name: billing, tracebus_drop_reason: slow_consumer}}]}
      - {eval_time: 23m, alertname: TracebusHandlersHung, exp_alerts: [{exp_labels: {severity: warning, job: billing, messaging_system: nats, messaging_consumer_group_name: billing}}]}
      - {eval_time: 30m, alertname: TracebusProcessErrorRatioHigh, exp_alerts: [{exp_labels: {severity: warning, job: shipping, messaging_system: kafka, messaging_consumer_group_name: shipping}}]}
      - {eval_time: 30m, alertname: TracebusClientErrorRatioHigh, exp_alerts: [{exp_labels: {severity: warning, job: billing, messaging_system: nats, messaging_operation_name: request}}]}
      - {eval_time: 30m, alertname: TracebusProcessingSlow, exp_alerts: [{exp_labels: {severity: warning, job: fraud, messaging_system: nats, messaging_consumer_group_name: fraud}}]}
      - {eval_time: 30m, alertname: TracebusConsumptionStalled, exp_alerts: [{exp_labels: {severity: critical, messaging_system: kafka}}]}

  - name: inside the thresholds
    interval: 1m
    input_series:
      - series: 'tracebus_consumer_dead_lettered_messages_total{job="billing",messaging_system="nats",messaging_consumer_group_name="billing"}'
        values: '7+0x40'
      - series: 'tracebus_consumer_dropped_messages_total{job="billing",messaging_system="nats",messaging_consumer_group_name="billing",tracebus_drop_reason="failed"}'
        values: '3+0x40'
      - series: 'tracebus_consumer_hung_messages_total{job="billing",messaging_system="nats",messaging_consumer_group_name="billing"}'
        values: '1+0x40'
      - series: 'messaging_process_duration_seconds_count{job="shipping",messaging_system="kafka",messaging_consumer_group_name="shipping"}'
        values: '0+96x40'
      - series: 'messaging_process_duration_seconds_count{job="shipping",messaging_system="kafka",messaging_consumer_group_name="shipping",error_type="_OTHER"}'
        values: '0+4x40'
      - series: 'messaging_client_operation_duration_seconds_count{job="billing",messaging_system="nats",messaging_operation_name="request"}'
        values: '0+96x40'
      - series: 'messaging_client_operation_duration_seconds_count{job="billing",messaging_system="nats",messaging_operation_name="request",error_type="timeout"}'
        values: '0+4x40'
      - series: 'messaging_process_duration_seconds_bucket{job="fraud",messaging_system="nats",messaging_consumer_group_name="fraud",le="0.5"}'
        values: '0+100x40'
      - series: 'messaging_process_duration_seconds_bucket{job="fraud",messaging_system="nats",messaging_consumer_group_name="fraud",le="1"}'
        values: '0+100x40'
      - series: 'messaging_process_duration_seconds_bucket{job="fraud",messaging_system="nats",messaging_consumer_group_name="fraud",le="+Inf"}'
        values: '0+100x40'
      - series: 'messaging_client_sent_messages_total{job="checkout",messaging_system="kafka",messaging_destination_name="orders"}'
        values: '0+10x40'
      - series: 'messaging_client_consumed_messages_total{job="shipping",messaging_system="kafka",messaging_destination_template="orders.*"}'
        values: '0+10x40'
    alert_rule_test:
      - {eval_time: 30m, alertname: TracebusDeadLettering}
      - {eval_time: 30m, alertname: TracebusMessagesDropped}
      - {eval_time: 30m, alertname: TracebusHandlersHung}
      - {eval_time: 30m, alertname: TracebusProcessErrorRatioHigh}
      - {eval_time: 30m, alertname: TracebusClientErrorRatioHigh}
      - {eval_time: 30m, alertname: TracebusProcessingSlow}
      - {eval_time: 30m, alertname: TracebusConsumptionStalled}
`

// TestAlertRulesFire runs promtool test rules on alertCases: the rules fire
// past their documented default thresholds, with the documented labels,
// and stay quiet inside them. The annotations are left out of the
// comparison (promtool compares them whole, and they are prose): the test
// runs on a copy of the rules without them.
func TestAlertRulesFire(t *testing.T) {
	_, promtool := prometheusBinaries(t)
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	dropKey(&doc, "annotations")
	stripped, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	cases := filepath.Join(dir, "cases.yml")
	if err := os.WriteFile(rules, stripped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cases, []byte(strings.Replace(alertCases, "RULES", rules, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), promtool, "test", "rules", cases).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	for _, name := range alertNames(t) {
		if !strings.Contains(alertCases, "alertname: "+name+",") {
			t.Errorf("alert %s has no case in alertCases", name)
		}
	}
}

// dropKey removes key from every mapping under n.
func dropKey(n *yaml.Node, key string) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				n.Content = append(n.Content[:i], n.Content[i+2:]...)
				i -= 2
			}
		}
	}
	for _, c := range n.Content {
		dropKey(c, key)
	}
}

// alertNames returns the names of the alerts in the rules file.
func alertNames(t *testing.T) []string {
	var names []string
	for _, q := range loadAlerts(t) {
		if name, ok := strings.CutPrefix(q.where, "alert "); ok {
			names = append(names, name)
		}
	}
	return names
}
