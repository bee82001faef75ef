package remoting

import "strconv"

// SerializeType is the header encoding of a frame, carried in the top byte of the header word.
type SerializeType uint8

// Header encodings (spec §1.3, §1.4).
const (
	// JSON is the fastjson-compatible JSON header, the Java default.
	JSON SerializeType = 0
	// RocketMQ is the compact binary ("ROCKETMQ") header.
	RocketMQ SerializeType = 1
)

// String returns the Java enum name: "JSON" or "ROCKETMQ".
func (t SerializeType) String() string {
	switch t {
	case JSON:
		return "JSON"
	case RocketMQ:
		return "ROCKETMQ"
	}
	return "SerializeType(" + strconv.Itoa(int(t)) + ")"
}

// LanguageCode identifies the client implementation in every request header. No server logic
// depends on it.
type LanguageCode uint8

// Language codes, in Java's LanguageCode enum order.
const (
	LanguageJava   LanguageCode = 0
	LanguageCPP    LanguageCode = 1
	LanguageDotNet LanguageCode = 2
	LanguagePython LanguageCode = 3
	LanguageDelphi LanguageCode = 4
	LanguageErlang LanguageCode = 5
	LanguageRuby   LanguageCode = 6
	LanguageOther  LanguageCode = 7
	LanguageHTTP   LanguageCode = 8
	LanguageGo     LanguageCode = 9
	LanguagePHP    LanguageCode = 10
	LanguageOMS    LanguageCode = 11
	LanguageRust   LanguageCode = 12
)

var languageNames = [...]string{
	"JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST",
}

// String returns the Java enum name ("GO", "JAVA", ...), the form the JSON header carries.
func (l LanguageCode) String() string {
	if int(l) < len(languageNames) {
		return languageNames[l]
	}
	return "LanguageCode(" + strconv.Itoa(int(l)) + ")"
}

// known reports whether l has an enum name.
func (l LanguageCode) known() bool { return int(l) < len(languageNames) }

// languageByName maps a JSON header's language name to its code; unknown names are
// LanguageOther so that a newer server's enum never breaks decoding.
func languageByName(s string) LanguageCode {
	for i, n := range languageNames {
		if n == s {
			return LanguageCode(i)
		}
	}
	return LanguageOther
}

// RequestCode is the code of a request (Command.Code on requests).
type RequestCode int32

// Request codes a producer sends or receives (spec §2.1, §1.7).
const (
	SendMessage              RequestCode = 10
	PullMessage              RequestCode = 11
	QueryMessage             RequestCode = 12
	UpdateAndCreateTopic     RequestCode = 17
	GetMinOffset             RequestCode = 29
	GetMaxOffset             RequestCode = 30
	ViewMessageByID          RequestCode = 33
	HeartBeat                RequestCode = 34
	UnregisterClient         RequestCode = 35
	EndTransaction           RequestCode = 37
	CheckTransactionState    RequestCode = 39
	NotifyConsumerIDsChanged RequestCode = 40
	GetRouteInfoByTopic      RequestCode = 105
	GetBrokerClusterInfo     RequestCode = 106
	SendMessageV2            RequestCode = 310
	SendBatchMessage         RequestCode = 320
	SendReplyMessage         RequestCode = 324
	SendReplyMessageV2       RequestCode = 325
)

// String returns the Java constant name, e.g. "SEND_MESSAGE_V2", or "RequestCode(n)".
func (c RequestCode) String() string {
	switch c {
	case SendMessage:
		return "SEND_MESSAGE"
	case PullMessage:
		return "PULL_MESSAGE"
	case QueryMessage:
		return "QUERY_MESSAGE"
	case UpdateAndCreateTopic:
		return "UPDATE_AND_CREATE_TOPIC"
	case GetMinOffset:
		return "GET_MIN_OFFSET"
	case GetMaxOffset:
		return "GET_MAX_OFFSET"
	case ViewMessageByID:
		return "VIEW_MESSAGE_BY_ID"
	case HeartBeat:
		return "HEART_BEAT"
	case UnregisterClient:
		return "UNREGISTER_CLIENT"
	case EndTransaction:
		return "END_TRANSACTION"
	case CheckTransactionState:
		return "CHECK_TRANSACTION_STATE"
	case NotifyConsumerIDsChanged:
		return "NOTIFY_CONSUMER_IDS_CHANGED"
	case GetRouteInfoByTopic:
		return "GET_ROUTEINFO_BY_TOPIC"
	case GetBrokerClusterInfo:
		return "GET_BROKER_CLUSTER_INFO"
	case SendMessageV2:
		return "SEND_MESSAGE_V2"
	case SendBatchMessage:
		return "SEND_BATCH_MESSAGE"
	case SendReplyMessage:
		return "SEND_REPLY_MESSAGE"
	case SendReplyMessageV2:
		return "SEND_REPLY_MESSAGE_V2"
	}
	return "RequestCode(" + strconv.Itoa(int(c)) + ")"
}

// ResponseCode is the code of a response (Command.Code on responses).
type ResponseCode int32

// Response codes (spec §2.2). FlushDiskTimeout, SlaveNotAvailable and FlushSlaveTimeout
// answer a send whose message was stored.
const (
	Success                 ResponseCode = 0
	SystemError             ResponseCode = 1
	SystemBusy              ResponseCode = 2
	RequestCodeNotSupported ResponseCode = 3
	TransactionFailed       ResponseCode = 4
	FlushDiskTimeout        ResponseCode = 10
	SlaveNotAvailable       ResponseCode = 11
	FlushSlaveTimeout       ResponseCode = 12
	MessageIllegal          ResponseCode = 13
	ServiceNotAvailable     ResponseCode = 14
	VersionNotSupported     ResponseCode = 15
	NoPermission            ResponseCode = 16
	TopicNotExist           ResponseCode = 17
	TopicExistAlready       ResponseCode = 18
	PullNotFound            ResponseCode = 19
	PullRetryImmediately    ResponseCode = 20
	PullOffsetMoved         ResponseCode = 21
	QueryNotFound           ResponseCode = 22
	InvalidParameter        ResponseCode = 29
	NoBuyerID               ResponseCode = 204
	NotInCurrentUnit        ResponseCode = 205
	FlowControl             ResponseCode = 215
	NotLeaderForQueue       ResponseCode = 501
	GoAway                  ResponseCode = 1500
)

// String returns the Java constant name, e.g. "SYSTEM_BUSY", or "ResponseCode(n)".
func (c ResponseCode) String() string {
	switch c {
	case Success:
		return "SUCCESS"
	case SystemError:
		return "SYSTEM_ERROR"
	case SystemBusy:
		return "SYSTEM_BUSY"
	case RequestCodeNotSupported:
		return "REQUEST_CODE_NOT_SUPPORTED"
	case TransactionFailed:
		return "TRANSACTION_FAILED"
	case FlushDiskTimeout:
		return "FLUSH_DISK_TIMEOUT"
	case SlaveNotAvailable:
		return "SLAVE_NOT_AVAILABLE"
	case FlushSlaveTimeout:
		return "FLUSH_SLAVE_TIMEOUT"
	case MessageIllegal:
		return "MESSAGE_ILLEGAL"
	case ServiceNotAvailable:
		return "SERVICE_NOT_AVAILABLE"
	case VersionNotSupported:
		return "VERSION_NOT_SUPPORTED"
	case NoPermission:
		return "NO_PERMISSION"
	case TopicNotExist:
		return "TOPIC_NOT_EXIST"
	case TopicExistAlready:
		return "TOPIC_EXIST_ALREADY"
	case PullNotFound:
		return "PULL_NOT_FOUND"
	case PullRetryImmediately:
		return "PULL_RETRY_IMMEDIATELY"
	case PullOffsetMoved:
		return "PULL_OFFSET_MOVED"
	case QueryNotFound:
		return "QUERY_NOT_FOUND"
	case InvalidParameter:
		return "INVALID_PARAMETER"
	case NoBuyerID:
		return "NO_BUYER_ID"
	case NotInCurrentUnit:
		return "NOT_IN_CURRENT_UNIT"
	case FlowControl:
		return "FLOW_CONTROL"
	case NotLeaderForQueue:
		return "NOT_LEADER_FOR_QUEUE"
	case GoAway:
		return "GO_AWAY"
	}
	return "ResponseCode(" + strconv.Itoa(int(c)) + ")"
}
