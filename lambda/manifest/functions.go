package manifest

// Function describes one of the six Lambda functions: its deployed name, the
// directory of its main package under lambda/cmd, the tables it uses and
// its size (the stack sets them; the local emulators give each invocation
// the same deadline).
type Function struct {
	Name           string
	Dir            string
	Tables         []Table
	MemoryMB       int
	TimeoutSeconds int
}

// Sizes. 128 MB is plenty for a Go handler doing a few DynamoDB calls (its
// resident set is ~30 MB); CPU scales with memory, but these handlers wait
// on the network, not the CPU. 10 s covers a cold start, a JWKS fetch on
// $connect and DynamoDB retries; API Gateway gives up after 29 s anyway.
//
// websocket-message gets 512 MB and 300 s: besides answering sendMessage
// within API Gateway's 29 s it runs the reply job it dispatches to itself,
// which streams a whole Claude reply (4096 Opus tokens take one to three
// minutes) and stops itself 5 s before this deadline, storing the text so
// far as incomplete. Its memory is sized from a measurement (make bench,
// attachments.peak_rss_mb): the largest request the limits allow (some
// 31 MiB of attachments, base64) peaked at 315 MiB, 123% of the 256 MB it
// had; at 512 MB that is 62%, under the 80% the bench asks for. A reply
// without attachments peaks at about 21 MiB.
const (
	smallMemoryMB, smallTimeoutSeconds     = 128, 10
	messageMemoryMB, messageTimeoutSeconds = 512, 300
)

// AsyncPayloadLimit is Lambda's limit on the payload of an asynchronous
// (Event) invocation, the one a reply job travels in: the message path
// keeps its jobs under it and the local Lambda stand-in enforces it.
const AsyncPayloadLimit = 256 * 1024

// Route keys of the WebSocket API.
const (
	RouteConnect     = "$connect"
	RouteDisconnect  = "$disconnect"
	RouteDefault     = "$default"
	RouteSendMessage = "sendMessage"
	RoutePing        = "ping"
	RouteStop        = "stop"
	RouteResume      = "resume"
)

var (
	WebSocketConnect    = Function{Name: "p2-two-websocket-connect-two", Dir: "websocket-connect", Tables: []Table{Connections}, MemoryMB: smallMemoryMB, TimeoutSeconds: smallTimeoutSeconds}
	WebSocketDisconnect = Function{Name: "p2-two-websocket-disconnect-two", Dir: "websocket-disconnect", Tables: []Table{Connections}, MemoryMB: smallMemoryMB, TimeoutSeconds: smallTimeoutSeconds}
	WebSocketMessage    = Function{Name: "p2-two-websocket-message-two", Dir: "websocket-message", Tables: All, MemoryMB: messageMemoryMB, TimeoutSeconds: messageTimeoutSeconds}
	// The conversation API deletes a conversation's replies with it, which
	// also stops one still running; it serves the upload routes, which
	// count a user's uploads a day on the usage table.
	ConversationAPI = Function{Name: "p2-two-conversation-api-two", Dir: "conversation-api", Tables: []Table{Conversations, Messages, Replies, Uploads, Usage}, MemoryMB: smallMemoryMB, TimeoutSeconds: smallTimeoutSeconds}
	PromptCRUD      = Function{Name: "p2-two-prompt-crud-two", Dir: "prompt-crud", Tables: []Table{Prompts}, MemoryMB: smallMemoryMB, TimeoutSeconds: smallTimeoutSeconds}
	UsageHandler    = Function{Name: "p2-two-usage-handler-two", Dir: "usage-handler", Tables: []Table{Usage}, MemoryMB: smallMemoryMB, TimeoutSeconds: smallTimeoutSeconds}
)

// Functions lists the six functions in a stable order.
var Functions = []Function{WebSocketConnect, WebSocketDisconnect, WebSocketMessage, ConversationAPI, PromptCRUD, UsageHandler}

// Route keys of the HTTP API: the stack declares these routes and the
// handlers serve them under the same keys.
const (
	RouteListConversations  = "GET /conversations"
	RouteGetConversation    = "GET /conversations/{id}"
	RouteRenameConversation = "PATCH /conversations/{id}"
	RouteDeleteConversation = "DELETE /conversations/{id}"
	RouteListPrompts        = "GET /prompts"
	RouteCreatePrompt       = "POST /prompts"
	RouteGetPrompt          = "GET /prompts/{id}"
	RouteUpdatePrompt       = "PUT /prompts/{id}"
	RouteDeletePrompt       = "DELETE /prompts/{id}"
	RouteCreateUpload       = "POST /uploads"
	RouteCompleteUpload     = "POST /uploads/{id}/complete"
	RouteGetUpload          = "GET /uploads/{id}"
	RouteDeleteUpload       = "DELETE /uploads/{id}"
	RouteGetUsage           = "GET /usage"
	RouteListModels         = "GET /models"
)

// HTTPRoutes maps each HTTP API route key to the function serving it.
var HTTPRoutes = []struct {
	RouteKey string
	Function Function
}{
	{RouteListConversations, ConversationAPI},
	{RouteGetConversation, ConversationAPI},
	{RouteRenameConversation, ConversationAPI},
	{RouteDeleteConversation, ConversationAPI},
	// Attachments: uploaded to S3, checked and deleted beside the
	// conversations that carry them.
	{RouteCreateUpload, ConversationAPI},
	{RouteCompleteUpload, ConversationAPI},
	{RouteGetUpload, ConversationAPI},
	{RouteDeleteUpload, ConversationAPI},
	{RouteListPrompts, PromptCRUD},
	{RouteCreatePrompt, PromptCRUD},
	{RouteGetPrompt, PromptCRUD},
	{RouteUpdatePrompt, PromptCRUD},
	{RouteDeletePrompt, PromptCRUD},
	{RouteGetUsage, UsageHandler},
	// The models a client may choose, with their prices: beside usage,
	// which reports what they cost.
	{RouteListModels, UsageHandler},
}

// WebSocketRoutes maps each WebSocket route key to the function serving it.
var WebSocketRoutes = []struct {
	RouteKey string
	Function Function
}{
	{RouteConnect, WebSocketConnect},
	{RouteDisconnect, WebSocketDisconnect},
	{RouteSendMessage, WebSocketMessage},
	{RoutePing, WebSocketMessage},
	{RouteStop, WebSocketMessage},
	{RouteResume, WebSocketMessage},
	{RouteDefault, WebSocketMessage},
}

// Metrics the runtime reports through CloudWatch Embedded Metric Format in
// its summary log line, and the stack alarms on. No dimensions: one stage
// per account and region.
const (
	MetricNamespace     = "Buddy"
	MetricModelRequests = "ModelRequests"
	MetricModelErrors   = "ModelErrors"
	// MetricInternalErrors counts requests and replies that ended with an
	// internal error (our fault, never the client's).
	MetricInternalErrors = "InternalErrors"
	// MetricTransactionConflicts counts the writes DynamoDB cancelled for
	// meeting a concurrent transaction on the same item (each retried).
	MetricTransactionConflicts = "TransactionConflicts"
)
