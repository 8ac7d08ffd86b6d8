package mockllm_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// TestOpenAISDK drives the Responses and audio endpoints with the official
// OpenAI Go client, which decodes every field it knows: the shapes are
// OpenAI's as far as that client can tell.
func TestOpenAISDK(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}}))
	client := openai.NewClient(option.WithBaseURL(b.url+"/v1"), option.WithAPIKey("unused"),
		option.WithMaxRetries(0), option.WithHTTPClient(b.client))
	ctx := t.Context()

	first, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:           "m",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("a b c")},
		Instructions:    openai.String("be nice"),
		MaxOutputTokens: openai.Int(3),
	})
	if err != nil {
		t.Fatal(err)
	}
	if first.OutputText() != "Hello from gpu-a" || first.Usage.InputTokens != 5 || first.Usage.OutputTokens != 3 ||
		first.Status != responses.ResponseStatusIncomplete || first.IncompleteDetails.Reason != "max_output_tokens" {
		t.Errorf("first response: %q, usage %+v, status %s", first.OutputText(), first.Usage, first.Status)
	}

	stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model:              "m",
		Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("d")},
		PreviousResponseID: openai.String(first.ID),
		MaxOutputTokens:    openai.Int(2),
	})
	var text string
	var completed responses.Response
	for stream.Next() {
		switch ev := stream.Current().AsAny().(type) {
		case responses.ResponseTextDeltaEvent:
			text += ev.Delta
		case responses.ResponseCompletedEvent:
			completed = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text != "Hello from" || completed.OutputText() != text || completed.PreviousResponseID != first.ID ||
		completed.Usage.InputTokens != int64(3+3+1) {
		t.Errorf("streamed follow-up: %q, completed %q, previous %q, usage %+v", text, completed.OutputText(), completed.PreviousResponseID, completed.Usage)
	}

	got, err := client.Responses.Get(ctx, completed.ID, responses.ResponseGetParams{})
	if err != nil || got.OutputText() != text {
		t.Errorf("Get: %v, %q", err, got.OutputText())
	}
	if err := client.Responses.Delete(ctx, completed.ID); err != nil {
		t.Errorf("Delete: %v", err)
	}
	var apiErr *openai.Error
	if _, err := client.Responses.Get(ctx, completed.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("Get after Delete: %v, want a 404", err)
	}

	tr, err := client.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
		File:  openai.File(bytes.NewReader(make([]byte, 64000)), "speech.wav", "audio/wav"),
		Model: "m",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Transcript by gpu-a of 64000 bytes of audio, fingerprint " + fingerprint(make([]byte, 64000)) + "."; tr.Text != want || tr.Usage.Seconds != 2 {
		t.Errorf("transcription %q, usage %+v; want %q and 2 seconds", tr.Text, tr.Usage, want)
	}
}
