package proxy

import "github.com/maasgate/maasgate/internal/deployment"

// endpoints are the inference APIs the gateway routes by model, with the
// paths clients call each under: LiteLLM's, and vLLM's where they differ.
var endpoints = []struct {
	ep    deployment.Endpoint
	paths []string
}{
	{deployment.Chat, []string{"/v1/chat/completions", "/chat/completions"}},
	{deployment.Completion, []string{"/v1/completions", "/completions"}},
	{deployment.Embedding, []string{"/v1/embeddings", "/embeddings"}},
	{deployment.Rerank, []string{"/v1/rerank", "/rerank", "/v2/rerank"}},
	{deployment.Score, []string{"/v1/score", "/score"}},
	{deployment.Transcription, []string{"/v1/audio/transcriptions", "/audio/transcriptions"}},
	{deployment.Translation, []string{"/v1/audio/translations", "/audio/translations"}},
	{deployment.Tokenize, []string{"/tokenize", "/v1/tokenize"}},
	{deployment.Detokenize, []string{"/detokenize", "/v1/detokenize"}},
	{deployment.Responses, []string{"/v1/responses", "/responses"}},
}

// isForm says the endpoint takes a multipart form (an audio file) rather
// than JSON.
func isForm(ep deployment.Endpoint) bool {
	return ep == deployment.Transcription || ep == deployment.Translation
}

// InferencePaths returns every path an inference endpoint is served
// under.
func InferencePaths() []string {
	var out []string
	for _, e := range endpoints {
		out = append(out, e.paths...)
	}
	return out
}
