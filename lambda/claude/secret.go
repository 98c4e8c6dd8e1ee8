package claude

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/p2/buddy/lambda/config"
)

// SecretsAPI is the part of *secretsmanager.Client that SecretKeys uses.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var (
	// ErrSecretNotFound: the secret does not exist (or has no current
	// value yet).
	ErrSecretNotFound = errors.New("secret not found")
	// ErrKeyNotConfigured: the secret exists but holds no usable key, e.g.
	// the placeholder the stack creates it with.
	ErrKeyNotConfigured = errors.New(`not configured: set the secret value to {"api_key":"sk-ant-..."}`)
)

// secretFetchTimeout bounds one read of the secret. The fetch is shared by
// every caller waiting for it, so it does not die with the first caller's
// context; this keeps it from outliving them all for long.
const secretFetchTimeout = 15 * time.Second

// SecretKeys is a KeySource reading the JSON secret {"api_key":"..."} from
// Secrets Manager. The key is cached for a TTL per execution environment;
// callers arriving while it is being fetched share that one fetch.
//
// Error messages name the secret, never its value.
type SecretKeys struct {
	api  SecretsAPI
	name string
	ttl  time.Duration
	// Now replaces time.Now (tests); set it before the first Key.
	Now func() time.Time

	mu      sync.Mutex
	key     string
	expires time.Time
	fetch   *keyFetch // in flight, nil when none
}

type keyFetch struct {
	done chan struct{}
	key  string
	err  error
}

// NewSecretKeys reads the secret name through api; ttl <= 0 means
// config.DefaultSecretTTL.
func NewSecretKeys(api SecretsAPI, name string, ttl time.Duration) *SecretKeys {
	if ttl <= 0 {
		ttl = config.DefaultSecretTTL
	}
	return &SecretKeys{api: api, name: name, ttl: ttl}
}

func (k *SecretKeys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// Key returns the cached key, or fetches it. Failures are not cached: the
// next call tries again, so setting the secret value takes effect at once.
func (k *SecretKeys) Key(ctx context.Context) (string, error) {
	k.mu.Lock()
	if k.key != "" && k.now().Before(k.expires) {
		key := k.key
		k.mu.Unlock()
		return key, nil
	}
	f := k.fetch
	if f == nil {
		f = &keyFetch{done: make(chan struct{})}
		k.fetch = f
		go k.run(context.WithoutCancel(ctx), f)
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.key, f.err
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}

// Invalidate drops the cached key; the next Key fetches the secret again.
// A fetch already in flight may hold the old value, so its result is not
// cached either.
func (k *SecretKeys) Invalidate() {
	k.mu.Lock()
	k.key = ""
	k.fetch = nil
	k.mu.Unlock()
}

func (k *SecretKeys) run(ctx context.Context, f *keyFetch) {
	ctx, cancel := context.WithTimeout(ctx, secretFetchTimeout)
	defer cancel()
	key, err := k.load(ctx)
	k.mu.Lock()
	if k.fetch == f {
		k.fetch = nil
		if err == nil {
			k.key, k.expires = key, k.now().Add(k.ttl)
		}
	}
	k.mu.Unlock()
	f.key, f.err = key, err
	close(f.done)
}

func (k *SecretKeys) load(ctx context.Context) (string, error) {
	out, err := k.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(k.name)})
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return "", fmt.Errorf("secret %q: %w; create it or correct %s: %w", k.name, ErrSecretNotFound, config.SecretName, err)
		}
		return "", fmt.Errorf("read secret %q: %w", k.name, err)
	}
	notConfigured := func(problem string) error {
		return fmt.Errorf("secret %q %s: %w", k.name, problem, ErrKeyNotConfigured)
	}
	if out.SecretString == nil {
		return "", notConfigured("has no string value")
	}
	// The decoding error is dropped on purpose: it may quote the value.
	var v struct {
		APIKey *string `json:"api_key"`
	}
	if json.Unmarshal([]byte(*out.SecretString), &v) != nil {
		return "", notConfigured(`is not JSON of the form {"api_key":"..."}`)
	}
	switch key := strings.TrimSpace(deref(v.APIKey)); {
	case v.APIKey == nil:
		return "", notConfigured("has no api_key field")
	case key == "":
		return "", notConfigured("has an empty api_key")
	case !plausibleKey(key):
		return "", notConfigured("holds a placeholder, not an API key")
	default:
		return key, nil
	}
}

// plausibleKey tells an Anthropic API key (sk-ant-...) from the placeholder
// the infrastructure creates the secret with (REPLACE_ME, changeme, ...).
// The prefix is all that is checked: the API is the judge of the rest.
func plausibleKey(key string) bool {
	return strings.HasPrefix(key, "sk-") && len(key) > len("sk-") && !strings.ContainsAny(key, " \t\r\n")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
