// Package driver is the contract between package broker and the code that
// plugs into it: transports (memory, natsbroker, kafkabroker) and
// middleware (telemetry). Service authors do not import it; they use
// package broker, whose Message and Headers are the types declared here.
package driver
