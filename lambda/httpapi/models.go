package httpapi

import (
	"context"
	"net/http"

	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/models"
	"github.com/p2/buddy/lambda/pricing"
)

// ModelJSON is one model a client may choose.
type ModelJSON struct {
	ID      string `json:"id"`
	Default bool   `json:"default"`
	// Thinking and Effort say whether sendMessage may ask this model for
	// extended thinking and for an effort level.
	Thinking bool          `json:"thinking"`
	Effort   bool          `json:"effort"`
	Price    pricing.Price `json:"price"`
}

// Models serves GET /models: the allowed models (ALLOWED_MODELS, the
// default first) with their capabilities and list prices. The server, not
// the client, decides what is allowed: sendMessage refuses any other id.
type Models struct {
	Allowed []string
}

// Routes returns the route table.
func (m *Models) Routes() map[string]HandlerFunc {
	return map[string]HandlerFunc{manifest.RouteListModels: m.list}
}

func (m *Models) list(context.Context, *Request) (Response, *Error) {
	out := make([]ModelJSON, 0, len(m.Allowed))
	for i, id := range m.Allowed {
		// Configuration validation admits only priced ids; the model table
		// knows every priced family.
		info, _ := models.Lookup(id)
		price, _ := pricing.Lookup(id)
		out = append(out, ModelJSON{ID: id, Default: i == 0, Thinking: info.Thinking, Effort: info.Effort, Price: price})
	}
	return Response{Status: http.StatusOK, Body: map[string]any{"models": out}}, nil
}
