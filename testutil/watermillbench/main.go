// Command watermillbench compares tracebus with watermill and with the raw
// clients on one workload, every variant in the same run, interleaved:
// messages of 1 KiB JSON published one per call by several goroutines with
// a bounded number in flight, a handler that decodes each into a struct and
// then acknowledges or commits it, on an embedded nats-server and an
// in-process kfake cluster. It prints, per mode and variant, the median
// throughput and CPU per message of the repetitions with their spread, and
// the ratios to watermill and to the raw client.
//
// It is a module of its own so that tracebus's go.mod does not gain
// watermill or Sarama. From the repository root:
//
//	go -C testutil/watermillbench run . [-n 50000] [-count 5] [-modes nats,jetstream,kafka,kafka-each]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.n, "n", 50000, "messages per run")
	flag.IntVar(&cfg.nEach, "n-each", 5000, "messages per run of kafka-each (a commit per message)")
	flag.IntVar(&cfg.count, "count", 5, "repetitions of every variant")
	flag.IntVar(&cfg.publishers, "publishers", 8, "publishing goroutines")
	flag.IntVar(&cfg.window, "window", 256, "messages in flight at most")
	flag.IntVar(&cfg.partitions, "partitions", 1, "partitions of each Kafka topic")
	flag.DurationVar(&cfg.limit, "limit", time.Minute, "longest run of one variant; a run cut short reports what it handled")
	flag.DurationVar(&cfg.limitEach, "limit-each", 20*time.Second, "longest run of one variant of kafka-each")
	modes := flag.String("modes", strings.Join(allModes, ","), "modes to run, comma-separated: "+strings.Join(allModes, ", "))
	variants := flag.String("variants", "", "variants to run, comma-separated (default all): "+strings.Join(allVariants, ", "))
	flag.Parse()
	cfg.modes = split(*modes)
	cfg.variants = split(*variants)
	if len(cfg.variants) == 0 {
		cfg.variants = allVariants
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("watermillbench: ")

	ctx := context.Background()
	env, err := startEnv()
	if err != nil {
		log.Fatal(err)
	}
	defer env.close()

	results, err := runAll(ctx, env, cfg)
	if err != nil {
		log.Fatal(err)
	}
	printTable(os.Stdout, cfg, results)
}

func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// config is what the flags set.
type config struct {
	n, nEach, count, publishers, window, partitions int
	limit, limitEach                                time.Duration
	modes, variants                                 []string
}

func (c config) messages(mode string) int {
	if mode == modeKafkaEach {
		return c.nEach
	}
	return c.n
}

func (c config) limitOf(mode string) time.Duration {
	if mode == modeKafkaEach {
		return c.limitEach
	}
	return c.limit
}

func (c config) String() string {
	return fmt.Sprintf("%d messages (%d for %s) of %d B JSON, %d publishers, %d in flight at most, %d repetitions interleaved, Kafka topics of %d partition(s)",
		c.n, c.nEach, modeKafkaEach, len(payload), c.publishers, c.window, c.count, c.partitions)
}
