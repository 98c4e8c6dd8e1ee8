package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
)

// Prompt limits.
const (
	MaxPromptNameRunes = 100
	MaxPromptTextRunes = 20_000
	MaxPromptsPerUser  = 200
)

// PromptJSON is a saved prompt on the wire (`id` and `promptId` alike).
type PromptJSON struct {
	ID        string    `json:"id"`
	PromptID  string    `json:"promptId"`
	Name      string    `json:"name"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func promptJSON(p store.Prompt) PromptJSON {
	return PromptJSON{ID: p.PromptID, PromptID: p.PromptID, Name: p.Name, Text: p.Text, CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC()}
}

// Prompts serves /prompts: saved system prompts.
type Prompts struct {
	Store store.Store
	Now   func() time.Time
}

// Routes returns the route table.
func (p *Prompts) Routes() map[string]HandlerFunc {
	return map[string]HandlerFunc{
		manifest.RouteListPrompts:  p.list,
		manifest.RouteCreatePrompt: p.create,
		manifest.RouteGetPrompt:    p.get,
		manifest.RouteUpdatePrompt: p.update,
		manifest.RouteDeletePrompt: p.delete,
	}
}

type promptInput struct {
	Name *string `json:"name"`
	Text *string `json:"text"`
}

// decodePrompt reads the body of a create or an update: both take the
// whole prompt.
func decodePrompt(r *Request) (name, text string, e *Error) {
	var in promptInput
	if e := r.Decode(&in); e != nil {
		return "", "", e
	}
	return in.validate()
}

func (in promptInput) validate() (name, text string, e *Error) {
	if in.Name == nil {
		return "", "", Errorf(http.StatusBadRequest, errcode.BadRequest, "name is required")
	}
	if in.Text == nil {
		return "", "", Errorf(http.StatusBadRequest, errcode.BadRequest, "text is required")
	}
	name = strings.TrimSpace(*in.Name)
	if e := checkText("name", name, MaxPromptNameRunes); e != nil {
		return "", "", e
	}
	if strings.ContainsAny(name, "\r\n") {
		return "", "", Errorf(http.StatusBadRequest, errcode.BadRequest, "name must be a single line")
	}
	text = strings.TrimSpace(*in.Text)
	if e := checkText("text", text, MaxPromptTextRunes); e != nil {
		return "", "", e
	}
	return name, text, nil
}

// list answers the user's prompts oldest first. All of them fit one
// response in practice, but MaxPromptsPerUser prompts of MaxPromptTextRunes
// characters can take 16 MB and more: a page that would pass
// MaxResponseBytes or MaxEnvelopeBytes ends early with nextCursor, which
// ?cursor= continues from.
func (p *Prompts) list(ctx context.Context, r *Request) (Response, *Error) {
	ps, err := p.Store.ListPrompts(ctx, r.User)
	if err != nil {
		return Response{}, Internal(err)
	}
	from := 0
	if c := r.Query("cursor"); c != "" {
		id, err := base64.RawURLEncoding.DecodeString(c)
		from = slices.IndexFunc(ps, func(p store.Prompt) bool { return p.PromptID == string(id) })
		if err != nil || from < 0 {
			return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "cursor is not one this API gave")
		}
	}
	out := make([]PromptJSON, 0, len(ps)-from)
	// Room for the list beside the longest cursor: of an id of 1024
	// bytes, DynamoDB's most for a sort key.
	body := map[string]any{"prompts": out, "nextCursor": strings.Repeat("x", base64.RawURLEncoding.EncodedLen(1024))}
	room, err := newPageRoom(body)
	if err != nil {
		return Response{}, Internal(err)
	}
	delete(body, "nextCursor")
	left := room.body
	for i, it := range ps[from:] {
		j := promptJSON(it)
		n, err := room.size(j)
		if err != nil {
			return Response{}, Internal(err)
		}
		if left -= n; left < 0 && len(out) > 0 {
			body["nextCursor"] = base64.RawURLEncoding.EncodeToString([]byte(ps[from+i].PromptID))
			break
		}
		out = append(out, j)
	}
	body["prompts"] = out
	return Response{Status: http.StatusOK, Body: body}, nil
}

func (p *Prompts) create(ctx context.Context, r *Request) (Response, *Error) {
	name, text, e := decodePrompt(r)
	if e != nil {
		return Response{}, e
	}
	t := now(p.Now)
	pr := store.Prompt{UserID: r.User, PromptID: ids.New(), Name: name, Text: text, CreatedAt: t, UpdatedAt: t}
	// The store checks the limit and creates in one atomic step: a count
	// here first would let concurrent creates all pass it.
	err := p.Store.CreatePrompt(ctx, pr, MaxPromptsPerUser)
	if errors.Is(err, store.ErrLimit) {
		return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "at most %d saved prompts; delete one first", MaxPromptsPerUser)
	}
	if err != nil {
		return Response{}, Internal(err)
	}
	return Response{Status: http.StatusCreated, Body: promptJSON(pr)}, nil
}

func (p *Prompts) get(ctx context.Context, r *Request) (Response, *Error) {
	id, e := r.ID("prompt")
	if e != nil {
		return Response{}, e
	}
	pr, err := p.Store.GetPrompt(ctx, r.User, id)
	if err != nil {
		return Response{}, storeError(err, "prompt")
	}
	return Response{Status: http.StatusOK, Body: promptJSON(pr)}, nil
}

func (p *Prompts) update(ctx context.Context, r *Request) (Response, *Error) {
	id, e := r.ID("prompt")
	if e != nil {
		return Response{}, e
	}
	name, text, e := decodePrompt(r)
	if e != nil {
		return Response{}, e
	}
	pr, err := p.Store.UpdatePrompt(ctx, store.Prompt{UserID: r.User, PromptID: id, Name: name, Text: text, UpdatedAt: now(p.Now)})
	if err != nil {
		return Response{}, storeError(err, "prompt")
	}
	return Response{Status: http.StatusOK, Body: promptJSON(pr)}, nil
}

func (p *Prompts) delete(ctx context.Context, r *Request) (Response, *Error) {
	return deleteByID(ctx, r, "prompt", p.Store.DeletePrompt)
}
