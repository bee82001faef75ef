// Package clientgocompat proves that devbroker speaks the RocketMQ protocol the way a
// client nobody in this project wrote expects: its test runs the official
// github.com/apache/rocketmq-client-go/v2 producer against a dev broker. It lives in its own
// module so that the main module never depends on rocketmq-client-go.
//
// rocketmq-client-go sends version 317 (so it gets bare-integer-key route JSON), uses
// SEND_MESSAGE (10) with long header names for single messages and SEND_BATCH_MESSAGE (320)
// for batches, always encodes JSON headers, and never sets the oneway flag (its oneway
// sends are answered and the answers dropped).
package clientgocompat
