package remoting

// Flag bits of Command.Flag.
const (
	// FlagResponse (bit 0) marks a response; requests have it clear.
	FlagResponse = 1
	// FlagOneway (bit 1) marks a request that expects no response.
	FlagOneway = 2
)

// MaxFrameSize is the Java default maximum frame length (com.rocketmq.remoting.frameMaxLength),
// counting the 4-byte length prefix, so the largest accepted totalLen is MaxFrameSize-4.
const MaxFrameSize = 16 << 20

// Command is one remoting request or response.
//
// A Command handed to an Invoke method is only read, never modified, so it may be reused for a
// retry or sent concurrently. Its body is copied into the connection's write buffer before the
// method returns.
type Command struct {
	// Code is the request code on requests and the response code on responses.
	Code int32
	// Language is the sender's implementation. On requests the Client sends its configured
	// language instead.
	Language LanguageCode
	// Version is the sender's MQVersion ordinal. On requests the Client sends this value when
	// non-zero, else its configured version.
	Version int32
	// Opaque is the request id a response echoes. On requests the Client assigns it.
	Opaque int32
	// Flag holds FlagResponse and FlagOneway. On requests the Client clears FlagResponse and
	// sets FlagOneway for InvokeOneway.
	Flag int32
	// Remark is free text, usually an error message on responses. Empty means absent.
	Remark string
	// ExtFields is the custom header: every header field as a string. An empty value does not
	// survive the ROCKETMQ encoding (it decodes as absent).
	ExtFields map[string]string
	// Fields, when non-empty, is the custom header instead of ExtFields, in the order it is
	// written: sorted by key (byte order), without duplicate keys, so the encoding stays
	// deterministic. It spares a sender the map and the sort; decoded commands never set it.
	Fields []Field
	// Body is the opaque payload. A decoded Body aliases the frame buffer.
	Body []byte
	// Serialize is the header encoding the command was decoded from. On requests the Client
	// uses its configured encoding instead.
	Serialize SerializeType
}

// Field is one custom header field (see Command.Fields).
type Field struct{ Key, Value string }

// NewRequest returns a request with the given code, ext fields and body. The Client fills in
// language, version, opaque and flag when it sends it.
func NewRequest(code RequestCode, ext map[string]string, body []byte) *Command {
	return &Command{Code: int32(code), ExtFields: ext, Body: body}
}

// NewResponse returns a response to req: same opaque and encoding, FlagResponse set, the given
// code and remark. Servers (and test fakes) use it.
func NewResponse(req *Command, code ResponseCode, remark string) *Command {
	return &Command{
		Code:      int32(code),
		Language:  req.Language,
		Version:   req.Version,
		Opaque:    req.Opaque,
		Flag:      FlagResponse,
		Remark:    remark,
		Serialize: req.Serialize,
	}
}

// IsResponse reports whether FlagResponse is set.
func (c *Command) IsResponse() bool { return c.Flag&FlagResponse != 0 }

// IsOneway reports whether FlagOneway is set.
func (c *Command) IsOneway() bool { return c.Flag&FlagOneway != 0 }

// ResponseCode returns Code as a ResponseCode (meaningful on responses).
func (c *Command) ResponseCode() ResponseCode { return ResponseCode(c.Code) }

// RequestCode returns Code as a RequestCode (meaningful on requests).
func (c *Command) RequestCode() RequestCode { return RequestCode(c.Code) }
