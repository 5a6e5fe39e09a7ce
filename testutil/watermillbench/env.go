package main

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tracebus/tracebus/testutil/kafkatest"
	"github.com/tracebus/tracebus/testutil/natstest"
)

// env holds the servers every variant runs against: one embedded
// nats-server with JetStream and one in-process kfake cluster.
type env struct {
	nats  *natstest.Server
	kafka *kafkatest.Cluster
	cfg   config
}

func startEnv() (*env, error) {
	ns, err := natstest.Start()
	if err != nil {
		return nil, err
	}
	kc, err := kafkatest.Start()
	if err != nil {
		ns.Shutdown()
		return nil, err
	}
	return &env{nats: ns, kafka: kc}, nil
}

func (e *env) close() {
	e.kafka.Close()
	e.nats.Shutdown()
}

// The modes of the benchmark.
const (
	modeNATS      = "nats"       // core NATS, a plain subscription
	modeJetStream = "jetstream"  // a synchronous JetStream publish per message, a durable consumer, an ack per message
	modeKafka     = "kafka"      // a consumer group committing every second
	modeKafkaEach = "kafka-each" // a consumer group committing after each message
)

var allModes = []string{modeNATS, modeJetStream, modeKafka, modeKafkaEach}

// The variants of every mode.
const (
	varRaw       = "raw"       // nats.go or kafka-go alone
	varTracebus  = "tracebus"  // a tracebus broker without middleware
	varTraced    = "traced"    // tracebus with the telemetry middleware, the SDK sampling every trace
	varWatermill = "watermill" // watermill with watermill-nats or watermill-kafka (Sarama)
)

var allVariants = []string{varRaw, varTracebus, varTraced, varWatermill}

// wiringOf returns the wiring of variant in mode.
func wiringOf(mode, variant string) (wiring, error) {
	var w wiring
	switch mode {
	case modeNATS, modeJetStream:
		js := mode == modeJetStream
		switch variant {
		case varRaw:
			w = rawNATS(js)
		case varTracebus, varTraced:
			w = tracebusNATS(js, variant == varTraced)
		case varWatermill:
			w = watermillNATS(js)
		}
	case modeKafka, modeKafkaEach:
		commit := time.Second
		if mode == modeKafkaEach {
			commit = 0
		}
		switch variant {
		case varRaw:
			w = rawKafka(commit)
		case varTracebus, varTraced:
			w = tracebusKafka(commit, variant == varTraced)
		case varWatermill:
			w = watermillKafka(commit)
		}
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	if w == nil {
		return nil, fmt.Errorf("unknown variant %q", variant)
	}
	return w, nil
}

// runAll runs every variant of every mode cfg.count times, interleaved:
// each repetition runs all of them once, in turn.
func runAll(ctx context.Context, e *env, cfg config) ([]result, error) {
	e.cfg = cfg
	var results []result
	for rep := range cfg.count {
		for _, mode := range cfg.modes {
			for _, variant := range cfg.variants {
				w, err := wiringOf(mode, variant)
				if err != nil {
					return nil, err
				}
				dest := fmt.Sprintf("bench-%s-%s-%d", mode, variant, rep)
				if err := e.create(ctx, mode, dest); err != nil {
					return nil, err
				}
				r, err := run(ctx, e, cfg, mode, variant, dest, w)
				e.remove(ctx, mode, dest)
				if err != nil {
					// One failed run leaves the others standing; the
					// table says how many runs each figure has.
					log.Printf("%d/%d %s", rep+1, cfg.count, err)
					continue
				}
				log.Printf("%d/%d %-10s %-9s %8.0f msgs/s %7.1f µs CPU/msg", rep+1, cfg.count, mode, variant,
					r.msgsPerSec, float64(r.cpuPerMsg.Nanoseconds())/1e3)
				results = append(results, r)
			}
		}
	}
	return results, nil
}

// create makes the stream or topic dest of one run.
func (e *env) create(ctx context.Context, mode, dest string) error {
	switch mode {
	case modeJetStream:
		return createStream(ctx, e, dest)
	case modeKafka, modeKafkaEach:
		return e.kafka.CreateTopicContext(ctx, dest, e.cfg.partitions)
	}
	return nil
}

// remove deletes what create made, so that the servers do not keep every
// run's messages in memory.
func (e *env) remove(ctx context.Context, mode, dest string) {
	var err error
	switch mode {
	case modeJetStream:
		err = deleteStream(ctx, e, dest)
	case modeKafka, modeKafkaEach:
		var res *kafka.DeleteTopicsResponse
		res, err = e.kafka.Client().DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{dest}})
		if err == nil {
			err = res.Errors[dest]
		}
	}
	if err != nil {
		log.Printf("remove %s: %v", dest, err)
	}
}

// streamName is the JetStream stream of subject dest.
func streamName(dest string) string { return strings.ToUpper(strings.ReplaceAll(dest, "-", "_")) }
