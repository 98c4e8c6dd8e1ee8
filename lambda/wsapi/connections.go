package wsapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
)

// EndpointFor is the @connections endpoint of the WebSocket API stage that
// a request came through, from its request context's domainName and stage.
func EndpointFor(domainName, stage string) string {
	return "https://" + domainName + "/" + stage
}

// ConnectionsPoster posts frames to, and closes, the connections of one
// WebSocket API stage through API Gateway's @connections API, signed with
// SigV4.
type ConnectionsPoster struct {
	endpoint string
	client   *apigatewaymanagementapi.Client
}

var _ Poster = (*ConnectionsPoster)(nil)

// NewConnectionsPoster returns a poster for endpoint: EndpointFor's
// https://{domainName}/{stage} in AWS, or a local stand-in's URL. cfg
// supplies the region, credentials, HTTP client and retry policy.
func NewConnectionsPoster(cfg aws.Config, endpoint string) *ConnectionsPoster {
	return &ConnectionsPoster{
		endpoint: endpoint,
		client: apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
			o.BaseEndpoint = aws.String(endpoint)
		}),
	}
}

// Endpoint is the endpoint the poster talks to.
func (p *ConnectionsPoster) Endpoint() string { return p.endpoint }

// Post sends data as one frame to the connection. A closed connection
// answers an error wrapping ErrGone.
func (p *ConnectionsPoster) Post(ctx context.Context, connectionID string, data []byte) error {
	_, err := p.client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(connectionID),
		Data:         data,
	})
	return wrapConnErr("post to", connectionID, err)
}

// DeleteConnection closes the connection from the server side. A
// connection that is already gone counts as closed.
func (p *ConnectionsPoster) DeleteConnection(ctx context.Context, connectionID string) error {
	_, err := p.client.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{
		ConnectionId: aws.String(connectionID),
	})
	if err = wrapConnErr("delete", connectionID, err); errors.Is(err, ErrGone) {
		return nil
	}
	return err
}

// wrapConnErr maps the SDK's errors: GoneException, or a bare 410 from a
// stand-in that does not name the exception, becomes ErrGone; anything
// else keeps the SDK error and states the HTTP status when there was one.
func wrapConnErr(op, connectionID string, err error) error {
	if err == nil {
		return nil
	}
	var gone *types.GoneException
	var withStatus interface{ HTTPStatusCode() int }
	status := 0
	if errors.As(err, &withStatus) {
		status = withStatus.HTTPStatusCode()
	}
	if errors.As(err, &gone) || status == http.StatusGone {
		return fmt.Errorf("wsapi: %s connection %s: %w", op, connectionID, ErrGone)
	}
	if status != 0 {
		return fmt.Errorf("wsapi: %s connection %s: status %d: %w", op, connectionID, status, err)
	}
	return fmt.Errorf("wsapi: %s connection %s: %w", op, connectionID, err)
}

// Connections keeps one ConnectionsPoster per endpoint, so every post to
// the same API reuses one SDK client and its pooled HTTP connections. A
// Lambda normally serves a single API, but nothing here assumes it.
type Connections struct {
	cfg     aws.Config
	mu      sync.Mutex
	posters map[string]*ConnectionsPoster
}

// NewConnections returns an empty cache whose posters use cfg.
func NewConnections(cfg aws.Config) *Connections {
	return &Connections{cfg: cfg, posters: map[string]*ConnectionsPoster{}}
}

// Poster returns the poster for endpoint, creating it on first use.
func (c *Connections) Poster(endpoint string) *ConnectionsPoster {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.posters[endpoint]
	if !ok {
		p = NewConnectionsPoster(c.cfg, endpoint)
		c.posters[endpoint] = p
	}
	return p
}
