package proxy

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"unsafe"

	"github.com/maasgate/maasgate/internal/openai"
)

// maxFormField bounds a form field other than the file: a model name, a
// language, a prompt.
const maxFormField = 64 << 10

// parseForm reads a multipart/form-data request (audio transcription and
// translation): the model is the "model" field, and the upstream body is
// the same form with that field moved to the end, where each attempt
// writes its deployment's model name. Every other part is copied as it
// came, headers included.
func (q *request) parseForm(contentType string) *openai.Error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return badRequest("Send this endpoint a multipart/form-data body (Content-Type: multipart/form-data; boundary=...) with a \"file\" and a \"model\" field, as the OpenAI SDKs do.")
	}
	in := multipart.NewReader(bytes.NewReader(q.raw.Bytes()), params["boundary"])
	out := getBuffer()
	out.Grow(q.raw.Len() + 256)
	mw := multipart.NewWriter(out)
	if err := mw.SetBoundary(params["boundary"]); err != nil {
		putBuffer(out)
		return badRequest("The multipart boundary is not valid: %s.", openai.Clip(err.Error()))
	}
	hasModel, hasFile := false, false
	for {
		part, err := in.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			putBuffer(out)
			return badRequest("The multipart body is malformed: %s.", openai.Clip(err.Error()))
		}
		name := part.FormName()
		switch name {
		case "model":
			v, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
			if err != nil || len(v) > maxFormField {
				putBuffer(out)
				return badRequest("The \"model\" field is malformed or longer than 64 KiB.")
			}
			q.model, hasModel = strings.TrimSpace(string(v)), true
			continue
		case "file":
			hasFile = part.FileName() != "" || hasFile
		case "stream":
			var b [8]byte
			n, _ := io.ReadFull(part, b[:])
			q.stream = strings.TrimSpace(string(b[:n])) == "true"
			w, err := mw.CreatePart(part.Header)
			if err == nil {
				_, err = w.Write(b[:n])
			}
			if err != nil {
				putBuffer(out)
				return badRequest("The multipart body could not be copied: %s.", openai.Clip(err.Error()))
			}
			continue
		}
		w, err := mw.CreatePart(part.Header)
		if err == nil {
			_, err = io.Copy(w, part)
		}
		if err != nil {
			putBuffer(out)
			return badRequest("The multipart body is malformed: %s.", openai.Clip(err.Error()))
		}
	}
	switch {
	case !hasModel || q.model == "":
		putBuffer(out)
		return badRequest("The form is missing its \"model\" field: name one of the models listed by GET /v1/models.")
	case !hasFile:
		putBuffer(out)
		return badRequest("The form is missing its \"file\" part: send the audio as a file field named \"file\".")
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="model"`)
	if _, err := mw.CreatePart(h); err != nil {
		putBuffer(out)
		return badRequest("The multipart body could not be copied: %s.", openai.Clip(err.Error()))
	}
	at := out.Len()
	_ = mw.Close() // writes to a buffer: cannot fail
	q.contentType = []string{mw.FormDataContentType()}
	// The copy replaces the body as received; the budget held for it
	// covers the copy, which is no larger but for the moved field.
	putBuffer(q.raw)
	q.raw = out
	// The parts alias the buffer, as a JSON body's do (see parse).
	b := out.Bytes()
	q.body = upstreamBody{}
	q.body.add(unsafe.String(unsafe.SliceData(b), at))
	q.body.markModel()
	q.body.add(unsafe.String(unsafe.SliceData(b[at:]), len(b)-at))
	return nil
}
