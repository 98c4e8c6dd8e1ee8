package schema

// Function describes one of the six Lambda functions: its deployed name, the
// directory of its main package under lambda/cmd, and the tables it uses.
type Function struct {
	Name   string
	Dir    string
	Tables []Table
}

// Route keys of the WebSocket API.
const (
	RouteConnect     = "$connect"
	RouteDisconnect  = "$disconnect"
	RouteDefault     = "$default"
	RouteSendMessage = "sendMessage"
	RoutePing        = "ping"
)

var (
	WebSocketConnect    = Function{Name: "p2-two-websocket-connect-two", Dir: "websocket-connect", Tables: []Table{Connections}}
	WebSocketDisconnect = Function{Name: "p2-two-websocket-disconnect-two", Dir: "websocket-disconnect", Tables: []Table{Connections}}
	WebSocketMessage    = Function{Name: "p2-two-websocket-message-two", Dir: "websocket-message", Tables: All}
	ConversationAPI     = Function{Name: "p2-two-conversation-api-two", Dir: "conversation-api", Tables: []Table{Conversations, Messages}}
	PromptCRUD          = Function{Name: "p2-two-prompt-crud-two", Dir: "prompt-crud", Tables: []Table{Prompts}}
	UsageHandler        = Function{Name: "p2-two-usage-handler-two", Dir: "usage-handler", Tables: []Table{Usage}}
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
	RouteGetUsage           = "GET /usage"
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
	{RouteListPrompts, PromptCRUD},
	{RouteCreatePrompt, PromptCRUD},
	{RouteGetPrompt, PromptCRUD},
	{RouteUpdatePrompt, PromptCRUD},
	{RouteDeletePrompt, PromptCRUD},
	{RouteGetUsage, UsageHandler},
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
	{RouteDefault, WebSocketMessage},
}

// Metrics the runtime reports through CloudWatch Embedded Metric Format in
// its summary log line, and the stack alarms on. No dimensions: one stage
// per account and region.
const (
	MetricNamespace     = "Buddy"
	MetricModelRequests = "ModelRequests"
	MetricModelErrors   = "ModelErrors"
)
