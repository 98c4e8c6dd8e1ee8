package s3local_test

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/p2/buddy/lambda/dev/s3local"
)

// upload is a presigned POST as Buddy makes it (DESIGN.md §9): the SDK's
// own PresignPostObject, the policy pinning the key (the SDK adds that),
// the exact size and the exact content type.
type upload struct {
	url    string
	fields map[string]string
}

// field is the form's name for the field named k in any case: the SDK
// writes X-Amz-Signature, S3 reads names case-insensitively.
func (u *upload) field(k string) string {
	for f := range u.fields {
		if strings.EqualFold(f, k) {
			return f
		}
	}
	return k
}

func presignUpload(t *testing.T, client *s3.Client, bucket, key, contentType string, size int64, expires time.Duration, extra ...any) upload {
	t.Helper()
	conditions := append([]any{
		[]any{"content-length-range", size, size},
		map[string]string{"Content-Type": contentType},
	}, extra...)
	req, err := s3.NewPresignClient(client).PresignPostObject(t.Context(), &s3.PutObjectInput{
		Bucket:      aws.String(bucket),
		Key:         aws.String(key),
		ContentType: aws.String(contentType),
	}, func(o *s3.PresignPostOptions) {
		o.Expires = expires
		o.Conditions = conditions
	})
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for k, v := range req.Values {
		fields[k] = v
	}
	// PresignPostObject does not return the Content-Type the policy
	// pins: the form must carry it, or S3 refuses every upload.
	fields["Content-Type"] = contentType
	return upload{url: req.URL, fields: fields}
}

// s3Answer is what the emulator said: the status and, for an error, S3's
// error code from its XML body.
type s3Answer struct {
	status int
	code   string
}

func (a s3Answer) String() string { return fmt.Sprintf("%d %s", a.status, a.code) }

// post sends the form as a browser does: multipart/form-data, every field,
// then the file last, over a real loopback connection.
func post(t *testing.T, u upload, body []byte) s3Answer {
	t.Helper()
	status, code, err := s3local.PostObject(t.Context(), u.url, u.fields, body)
	if err != nil {
		t.Fatal(err)
	}
	return s3Answer{status: status, code: code}
}

func do(t *testing.T, req *http.Request) s3Answer {
	t.Helper()
	a, _ := doHeader(t, req)
	return a
}

func doHeader(t *testing.T, req *http.Request) (s3Answer, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := s3Answer{status: resp.StatusCode}
	if resp.StatusCode >= 300 {
		var e struct{ Code string }
		if err := xml.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: %d with a body that is not S3's error XML: %q", req.Method, req.URL, resp.StatusCode, b)
		}
		a.code = e.Code
	}
	return a, resp.Header
}

// object is the stored object's content type and bytes, or ok false when
// there is none.
func object(t *testing.T, client *s3.Client, bucket, key string) (contentType string, body []byte, ok bool) {
	t.Helper()
	out, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var missing *types.NoSuchKey
	if errors.As(err, &missing) {
		return "", nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	body, err = io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ContentType), body, true
}

// tamperPolicy returns the base64 policy with its JSON edited by edit; the
// signature in the form no longer matches it.
func tamperPolicy(t *testing.T, policy string, edit func(string) string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(policy)
	if err != nil {
		t.Fatal(err)
	}
	edited := edit(string(raw))
	if edited == string(raw) {
		t.Fatalf("the edit changed nothing in %s", raw)
	}
	return base64.StdEncoding.EncodeToString([]byte(edited))
}

// The emulator's reason to be here: S3 itself, not Buddy, refuses every
// upload that differs from what the presigned POST's policy pins, and
// leaves no object behind.
func TestPresignedPostPolicyIsEnforced(t *testing.T) {
	client, bucket := s3local.TestBucket(t)
	const size = 1024
	body := bytes.Repeat([]byte{0x89}, size)
	tests := []struct {
		name    string
		expires time.Duration
		// edit changes the form or the body from what the policy pins.
		edit func(t *testing.T, u *upload, body []byte) []byte
		want s3Answer
	}{
		{name: "the exact body is stored", want: s3Answer{status: http.StatusNoContent}},
		{
			name: "a body one byte larger is refused",
			edit: func(_ *testing.T, _ *upload, body []byte) []byte { return append(body, 0) },
			want: s3Answer{http.StatusBadRequest, "EntityTooLarge"},
		},
		{
			name: "a body one byte smaller is refused",
			edit: func(_ *testing.T, _ *upload, body []byte) []byte { return body[:len(body)-1] },
			want: s3Answer{http.StatusBadRequest, "EntityTooSmall"},
		},
		{
			name: "an empty body is refused",
			edit: func(_ *testing.T, _ *upload, body []byte) []byte { return nil },
			want: s3Answer{http.StatusBadRequest, "EntityTooSmall"},
		},
		{
			name: "another Content-Type is refused",
			edit: func(_ *testing.T, u *upload, body []byte) []byte {
				u.fields["Content-Type"] = "image/jpeg"
				return body
			},
			want: s3Answer{http.StatusForbidden, "AccessDenied"},
		},
		{
			name: "a missing Content-Type field is refused",
			edit: func(_ *testing.T, u *upload, body []byte) []byte { delete(u.fields, "Content-Type"); return body },
			want: s3Answer{http.StatusForbidden, "AccessDenied"},
		},
		{
			name: "another key is refused",
			edit: func(_ *testing.T, u *upload, body []byte) []byte { u.fields[u.field("key")] += "-other"; return body },
			want: s3Answer{http.StatusForbidden, "AccessDenied"},
		},
		{
			name: "a field the policy does not cover is refused",
			edit: func(_ *testing.T, u *upload, body []byte) []byte {
				u.fields["x-amz-meta-owner"] = "mallory"
				return body
			},
			want: s3Answer{http.StatusForbidden, "AccessDenied"},
		},
		{
			name: "a policy widened after signing is refused",
			edit: func(t *testing.T, u *upload, body []byte) []byte {
				f := u.field("policy")
				u.fields[f] = tamperPolicy(t, u.fields[f], func(p string) string {
					return strings.Replace(p, `["content-length-range",1024,1024]`, `["content-length-range",1,1048576]`, 1)
				})
				return append(body, body...)
			},
			want: s3Answer{http.StatusForbidden, "SignatureDoesNotMatch"},
		},
		{
			name: "a signature made with another secret is refused",
			edit: func(_ *testing.T, u *upload, body []byte) []byte {
				f := u.field("x-amz-signature")
				sig := []byte(u.fields[f])
				sig[0] ^= 1
				u.fields[f] = string(sig)
				return body
			},
			want: s3Answer{http.StatusForbidden, "SignatureDoesNotMatch"},
		},
		{
			name: "a form without policy or signature is refused",
			edit: func(_ *testing.T, u *upload, body []byte) []byte {
				for _, k := range []string{"policy", "x-amz-signature", "x-amz-algorithm", "x-amz-credential", "x-amz-date"} {
					delete(u.fields, u.field(k))
				}
				return body
			},
			want: s3Answer{http.StatusForbidden, "AccessDenied"},
		},
		{name: "an expired policy is refused", expires: -time.Minute, want: s3Answer{http.StatusForbidden, "AccessDenied"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("uploads/u%d", i)
			expires := tt.expires
			if expires == 0 {
				expires = 15 * time.Minute
			}
			u := presignUpload(t, client, bucket, key, "image/png", size, expires)
			b := bytes.Clone(body)
			if tt.edit != nil {
				b = tt.edit(t, &u, b)
			}
			if got := post(t, u, b); got != tt.want {
				t.Errorf("POST answered %v, want %v", got, tt.want)
			}
			ct, stored, ok := object(t, client, bucket, key)
			if tt.want.status >= 300 {
				if ok {
					t.Errorf("refused, yet an object of %d bytes is stored", len(stored))
				}
				if _, _, ok := object(t, client, bucket, key+"-other"); ok {
					t.Error("refused, yet an object is stored under the other key")
				}
				return
			}
			if !ok || ct != "image/png" || !bytes.Equal(stored, b) {
				t.Errorf("stored: %v, type %q, %d bytes; want image/png and the %d bytes sent", ok, ct, len(stored), len(b))
			}
		})
	}
}

// The largest upload Buddy allows (MAX_PDF_BYTES, 10 MiB) goes through in
// one POST, and success_action_status 201 is answered as S3 does.
func TestPresignedPostTakesTenMiB(t *testing.T) {
	client, bucket := s3local.TestBucket(t)
	const size = 10 << 20
	body := bytes.Repeat([]byte("%PDF-1.7 "), size/9+1)[:size]
	u := presignUpload(t, client, bucket, "big.pdf", "application/pdf", size, time.Minute,
		map[string]string{"success_action_status": "201"})
	u.fields["success_action_status"] = "201"
	if got := post(t, u, body); got != (s3Answer{status: http.StatusCreated}) {
		t.Fatalf("POST answered %v, want 201", got)
	}
	ct, stored, ok := object(t, client, bucket, "big.pdf")
	if !ok || ct != "application/pdf" || !bytes.Equal(stored, body) {
		t.Errorf("stored: %v, type %q, %d bytes; want application/pdf and the %d bytes sent", ok, ct, len(stored), len(body))
	}
}

// Every call is checked against the keys of this start: a client that
// signs with another secret, another access key or for another region is
// refused.
func TestSignedCallsNeedTheKeys(t *testing.T) {
	_, bucket := s3local.TestBucket(t)
	srv := s3local.TestServer(t)
	good := srv.Credentials()
	tests := []struct {
		name   string
		creds  aws.Credentials
		region string
		want   string // error code; "" for success
	}{
		{"the server's keys", good, s3local.Region, ""},
		{"another secret", aws.Credentials{AccessKeyID: good.AccessKeyID, SecretAccessKey: good.SecretAccessKey + "x"}, s3local.Region, "SignatureDoesNotMatch"},
		// S3 answers 403 InvalidAccessKeyId; versitygw 404 with its own code.
		{"another access key", aws.Credentials{AccessKeyID: "LOCALNOBODY", SecretAccessKey: good.SecretAccessKey}, s3local.Region, "XAdminUserNotFound"},
		{"another region", good, "eu-west-1", "AuthorizationHeaderMalformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := s3local.NewClient(srv.Endpoint(), tt.creds, func(o *s3.Options) { o.Region = tt.region })
			_, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
			var api smithy.APIError
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ListObjectsV2: %v", err)
			case tt.want != "" && (!errors.As(err, &api) || api.ErrorCode() != tt.want):
				t.Errorf("ListObjectsV2: %v, want %s", err, tt.want)
			}
		})
	}
}

// Presigned GET URLs (thumbnails): the SDK's own URL works; one whose
// signature or key was changed, or that has expired, is refused.
func TestPresignedGet(t *testing.T) {
	client, bucket := s3local.TestBucket(t)
	for _, key := range []string{"a.png", "b.png"} {
		_, err := client.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(key), ContentType: aws.String("image/png"),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	presigned, err := s3.NewPresignClient(client).PresignGetObject(t.Context(),
		&s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("a.png")}, s3.WithPresignExpires(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	srv := s3local.TestServer(t)
	// A URL signed an hour ago for 60 seconds, by the SDK's own signer.
	expired := func(t *testing.T) string {
		req, err := http.NewRequest(http.MethodGet, srv.Endpoint()+"/"+bucket+"/a.png?X-Amz-Expires=60", nil)
		if err != nil {
			t.Fatal(err)
		}
		u, _, err := v4.NewSigner().PresignHTTP(t.Context(), srv.Credentials(), req, "UNSIGNED-PAYLOAD", "s3", s3local.Region, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name string
		url  func(t *testing.T) string
		want s3Answer
	}{
		{"the presigned URL works", func(*testing.T) string { return presigned.URL }, s3Answer{status: http.StatusOK}},
		{"another key under the same signature is refused", func(*testing.T) string {
			return strings.Replace(presigned.URL, "/a.png?", "/b.png?", 1)
		}, s3Answer{http.StatusForbidden, "SignatureDoesNotMatch"}},
		{"a changed signature is refused", func(t *testing.T) string {
			u, err := url.Parse(presigned.URL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			sig := []byte(q.Get("X-Amz-Signature"))
			sig[len(sig)-1] ^= 1
			q.Set("X-Amz-Signature", string(sig))
			u.RawQuery = q.Encode()
			return u.String()
		}, s3Answer{http.StatusForbidden, "SignatureDoesNotMatch"}},
		{"a longer lifetime than signed is refused", func(t *testing.T) string {
			return strings.Replace(presigned.URL, "X-Amz-Expires=300", "X-Amz-Expires=3000", 1)
		}, s3Answer{http.StatusForbidden, "SignatureDoesNotMatch"}},
		{"an expired URL is refused", expired, s3Answer{http.StatusForbidden, "AccessDenied"}},
		{"no signature at all is refused", func(*testing.T) string {
			return srv.Endpoint() + "/" + bucket + "/a.png"
		}, s3Answer{http.StatusForbidden, "AccessDenied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url(t)
			if u == presigned.URL && tt.want.status != http.StatusOK {
				t.Fatal("the URL was not changed")
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := do(t, req); got != tt.want {
				t.Errorf("GET answered %v, want %v", got, tt.want)
			}
		})
	}
}

// Object tags, which Buddy may use to tell lifecycle rules what to expire:
// the API stores and returns them, and a POST may set them only through a
// tagging field its policy pins.
func TestObjectTagging(t *testing.T) {
	client, bucket := s3local.TestBucket(t)
	tags := func(t *testing.T, key string) string {
		t.Helper()
		out, err := client.GetObjectTagging(t.Context(), &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, tag := range out.TagSet {
			s = append(s, aws.ToString(tag.Key)+"="+aws.ToString(tag.Value))
		}
		return strings.Join(s, ",")
	}

	t.Run("PutObjectTagging then GetObjectTagging", func(t *testing.T) {
		_, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("tagged"), Body: strings.NewReader("x")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.PutObjectTagging(t.Context(), &s3.PutObjectTaggingInput{
			Bucket: aws.String(bucket), Key: aws.String("tagged"),
			Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("state"), Value: aws.String("pending")}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := tags(t, "tagged"); got != "state=pending" {
			t.Errorf("tags %q, want state=pending", got)
		}
		_, err = client.DeleteObjectTagging(t.Context(), &s3.DeleteObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String("tagged")})
		if err != nil {
			t.Fatal(err)
		}
		if got := tags(t, "tagged"); got != "" {
			t.Errorf("tags after DeleteObjectTagging %q, want none", got)
		}
	})

	const tagging = `<Tagging><TagSet><Tag><Key>state</Key><Value>pending</Value></Tag></TagSet></Tagging>`
	for _, tt := range []struct {
		name   string
		pinned bool   // the policy pins the tagging field
		sent   string // the form's tagging field
		want   s3Answer
	}{
		{"a tagging field the policy pins is stored", true, tagging, s3Answer{status: http.StatusNoContent}},
		{"another tagging field than pinned is refused", true, strings.Replace(tagging, "pending", "attached", 1), s3Answer{http.StatusForbidden, "AccessDenied"}},
		{"a tagging field the policy does not cover is refused", false, tagging, s3Answer{http.StatusForbidden, "AccessDenied"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := "post-" + strings.ReplaceAll(tt.name, " ", "-")
			var extra []any
			if tt.pinned {
				extra = append(extra, map[string]string{"tagging": tagging})
			}
			u := presignUpload(t, client, bucket, key, "image/png", 3, time.Minute, extra...)
			u.fields["tagging"] = tt.sent
			if got := post(t, u, []byte("png")); got != tt.want {
				t.Fatalf("POST answered %v, want %v", got, tt.want)
			}
			_, _, ok := object(t, client, bucket, key)
			if tt.want.status >= 300 {
				if ok {
					t.Error("refused, yet the object is stored")
				}
				return
			}
			if got := tags(t, key); got != "state=pending" {
				t.Errorf("tags %q, want state=pending", got)
			}
		})
	}
}

// What the complete step reads (DESIGN.md §9): an object's size and type
// from HeadObject, its first bytes from a ranged GET; a missing one is 404.
func TestHeadRangedGetAndDelete(t *testing.T) {
	client, bucket := s3local.TestBucket(t)
	ctx := t.Context()
	const content = "\x89PNG\r\n\x1a\n0123456789abcdef"
	_, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("r"), Body: strings.NewReader(content), ContentType: aws.String("image/png"),
	})
	if err != nil {
		t.Fatal(err)
	}
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("r")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(content)) || aws.ToString(head.ContentType) != "image/png" {
		t.Errorf("HeadObject: %d bytes of %q, want %d of image/png", aws.ToInt64(head.ContentLength), aws.ToString(head.ContentType), len(content))
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("r"), Range: aws.String("bytes=0-7")})
	if err != nil {
		t.Fatal(err)
	}
	first, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != content[:8] || aws.ToString(out.ContentRange) != fmt.Sprintf("bytes 0-7/%d", len(content)) {
		t.Errorf("ranged GET: %q (%s), want the first 8 bytes", first, aws.ToString(out.ContentRange))
	}
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("r")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("r")}); err != nil {
		t.Errorf("deleting a deleted object: %v, want success as S3 answers", err)
	}
	_, err = client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("r")})
	var notFound *types.NotFound
	if !errors.As(err, &notFound) {
		t.Errorf("HeadObject after DeleteObject: %v, want NotFound", err)
	}
}

// The chat page posts to the emulator from another origin: the bucket's
// CORS rules are applied to the preflight and to the POST's answer.
func TestBucketCORS(t *testing.T) {
	client, bucket := s3local.TestBucket(t)
	const origin = "http://127.0.0.1:8787"
	_, err := client.PutBucketCors(t.Context(), &s3.PutBucketCorsInput{Bucket: aws.String(bucket), CORSConfiguration: &types.CORSConfiguration{
		CORSRules: []types.CORSRule{{AllowedOrigins: []string{origin}, AllowedMethods: []string{"POST", "GET"}, AllowedHeaders: []string{"*"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	u := presignUpload(t, client, bucket, "cors.png", "image/png", 3, time.Minute)
	for _, tt := range []struct {
		origin string
		want   s3Answer
	}{
		{origin, s3Answer{status: http.StatusOK}},
		{"http://elsewhere.example", s3Answer{http.StatusForbidden, "AccessForbidden"}},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, u.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", tt.origin)
		req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		got, header := doHeader(t, req)
		allowed := header.Get("Access-Control-Allow-Origin")
		if got != tt.want || (tt.want.status == http.StatusOK) != (allowed == tt.origin) {
			t.Errorf("preflight from %s: %v allowing %q, want %v", tt.origin, got, allowed, tt.want)
		}
	}
}

// What the emulator does not do, so that nothing is believed tested on it:
// lifecycle rules (Buddy's expiry of unattached uploads), default
// encryption and Block Public Access are not implemented (501).
func TestNotImplemented(t *testing.T) {
	client, bucket := s3local.TestBucket(t)
	ctx, b := t.Context(), aws.String(bucket)
	for name, call := range map[string]func() error{
		"PutBucketLifecycleConfiguration": func() error {
			_, err := client.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: b,
				LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{{
					ID: aws.String("unattached"), Status: types.ExpirationStatusEnabled,
					Filter:     &types.LifecycleRuleFilter{Prefix: aws.String("")},
					Expiration: &types.LifecycleExpiration{Days: aws.Int32(1)},
				}}}})
			return err
		},
		"PutBucketEncryption": func() error {
			_, err := client.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: b,
				ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
					ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAes256},
				}}}})
			return err
		},
		"PutPublicAccessBlock": func() error {
			_, err := client.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: b,
				PublicAccessBlockConfiguration: &types.PublicAccessBlockConfiguration{BlockPublicAcls: aws.Bool(true)}})
			return err
		},
	} {
		var api smithy.APIError
		if err := call(); !errors.As(err, &api) || api.ErrorCode() != "NotImplemented" {
			t.Errorf("%s: %v, want NotImplemented (update the README if it now works)", name, err)
		}
	}
}
