package s3local

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
)

// PostObject sends a browser's form upload to a presigned POST: every
// field of fields, then body as the field "file", multipart/form-data. It
// returns the status and, for a refusal, S3's error code; err only when
// the request could not be made or the answer read.
func PostObject(ctx context.Context, url string, fields map[string]string, body []byte) (status int, code string, err error) {
	var form bytes.Buffer
	w := multipart.NewWriter(&form)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			return 0, "", err
		}
	}
	fw, err := w.CreateFormFile("file", "upload.bin")
	if err != nil {
		return 0, "", err
	}
	if _, err := fw.Write(body); err != nil {
		return 0, "", err
	}
	if err := w.Close(); err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &form)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Code string }
		if err := xml.Unmarshal(b, &e); err != nil {
			return resp.StatusCode, "", fmt.Errorf("s3local: %d with a body that is not S3's error XML: %q", resp.StatusCode, b)
		}
		code = e.Code
	}
	return resp.StatusCode, code, nil
}
