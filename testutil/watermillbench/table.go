package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// printTable writes, per mode and variant, the median throughput and CPU
// per message with the range of the repetitions, and the ratios of medians
// to watermill and to the raw client, then the machine.
func printTable(out io.Writer, cfg config, results []result) {
	fmt.Fprintf(out, "\n%s\n\n", cfg)
	fmt.Fprintln(out, "| mode | variant | msgs/s, median [min–max] | CPU µs/msg, median [min–max] | / watermill: msgs/s, CPU | / raw: msgs/s, CPU |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	for _, mode := range cfg.modes {
		for _, variant := range cfg.variants {
			m, ok := medianOf(results, mode, variant)
			if !ok {
				continue
			}
			mark := ""
			if m.partial {
				mark = " ¹"
			}
			if m.runs < cfg.count {
				mark += fmt.Sprintf(" (%d runs)", m.runs)
			}
			fmt.Fprintf(out, "| %s | %s | %.0f [%.0f–%.0f]%s | %.1f [%.1f–%.1f] |", mode, variant,
				m.msgsPerSec, m.minRate, m.maxRate, mark, micros(m.cpuPerMsg), micros(m.minCPU), micros(m.maxCPU))
			for _, base := range []string{varWatermill, varRaw} {
				b, ok := medianOf(results, mode, base)
				if !ok || base == variant {
					fmt.Fprint(out, " – |")
					continue
				}
				fmt.Fprintf(out, " %.2f×, %.2f× |", m.msgsPerSec/b.msgsPerSec, float64(m.cpuPerMsg)/float64(b.cpuPerMsg))
			}
			fmt.Fprintln(out)
		}
	}
	if slices.ContainsFunc(results, func(r result) bool { return r.partial }) {
		fmt.Fprintf(out, "\n¹ at least one run was cut short (after %s, %s for %s); its figure counts the messages handled until then.\n", cfg.limit, cfg.limitEach, modeKafkaEach)
	}
	fmt.Fprintf(out, "\nMachine: %s, %d CPUs, %s %s/%s, load average %s; %s\n", cpuModel(), runtime.NumCPU(),
		runtime.Version(), runtime.GOOS, runtime.GOARCH, loadAverage(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}

// summary is the medians and ranges of the runs of one variant.
type summary struct {
	msgsPerSec, minRate, maxRate float64
	cpuPerMsg, minCPU, maxCPU    time.Duration
	partial                      bool
	runs                         int
}

func medianOf(results []result, mode, variant string) (summary, bool) {
	var rate, cpu []float64
	var s summary
	for _, r := range results {
		if r.mode == mode && r.variant == variant {
			rate = append(rate, r.msgsPerSec)
			cpu = append(cpu, float64(r.cpuPerMsg))
			s.partial = s.partial || r.partial
		}
	}
	if len(rate) == 0 {
		return s, false
	}
	slices.Sort(rate)
	slices.Sort(cpu)
	s.runs = len(rate)
	s.msgsPerSec, s.minRate, s.maxRate = median(rate), rate[0], rate[len(rate)-1]
	s.cpuPerMsg, s.minCPU, s.maxCPU = time.Duration(median(cpu)), time.Duration(cpu[0]), time.Duration(cpu[len(cpu)-1])
	return s, true
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// median of sorted xs.
func median(xs []float64) float64 {
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
