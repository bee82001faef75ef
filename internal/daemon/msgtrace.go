package daemon

import (
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/config"
)

// traceGroupPrefix starts the group of a trace producer, as in the Java client
// (TraceConstants.GROUP_NAME_PREFIX).
const traceGroupPrefix = "_INNER_TRACE_PRODUCER-"

// newMsgTracer starts the message-trace writer of a group with message_trace on (nil
// when off): its own producer, group _INNER_TRACE_PRODUCER-<group>, on the group's
// client settings, with the Java trace producer's 5 s send timeout and no hooks (no
// trace of the trace).
func (d *Daemon) newMsgTracer(pc core.ProducerConfig, p config.Producer) (*core.MsgTracer, error) {
	if !p.MessageTrace {
		return nil, nil
	}
	// No namespace: the tools read the trace topic by its plain name.
	tc := core.ProducerConfig{Group: traceGroupPrefix + p.Group, Client: pc.Client, SendTimeout: 5 * time.Second}
	prod, err := core.NewProducer(tc)
	if err != nil {
		return nil, err
	}
	return core.NewMsgTracer(prod, p.MessageTraceTopic, d.log.Named("msgtrace").With("group", p.Group)), nil
}
