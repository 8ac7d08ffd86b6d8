// Package mockllm is a simulated vLLM server for the gateway's tests, its demo
// and its benchmarks. It answers vLLM's OpenAI-compatible API
// (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models), the
// other APIs vLLM serves (Anthropic's /v1/messages and
// /v1/messages/count_tokens; the Responses API's /v1/responses and
// /v1/responses/{id}; /rerank, /v1/rerank, /v2/rerank, /score and /v1/score;
// /v1/audio/transcriptions and /v1/audio/translations; /tokenize and
// /detokenize), its /health and /metrics, and models one GPU: at most
// Config.MaxConcurrent sequences run at once, later requests wait in a FIFO
// queue, the first token comes after Config.TTFT and every further one after
// Config.TPOT. Each API's file says how it follows vLLM and where it departs.
//
// Every response names the backend that produced it, so a test of a router
// can see where a request went: the X-Mock-Backend header, the
// system_fingerprint field of bodies and stream chunks, and the generated text
// itself ("Hello from gpu-a. Hello from gpu-a. ...", one word per token).
//
// Faults (errors, hangs, dropped streams, refused connections, slowness) are
// set in Config, at run time with Server.SetFaults, or over HTTP:
//
//	GET  /mock/faults   the current Faults as JSON
//	PUT  /mock/faults   replace them; "refuse_for":"10s" refuses connections for
//	                    that long and then reopens the listener by itself
//	GET  /mock/stats    Stats as JSON
//
// The control endpoints need no API key and are never subject to faults, but
// a refusing server cannot be reached at all, hence refuse_for.
//
// With Config.Engine (the --profile flag) the simple model gives way to an
// engine model of vLLM V1: continuous batching, chunked prefill, a paged KV
// cache with automatic prefix caching and preemption, and a step time from
// a profile's constants (ProfileH100Llama8B); Config.SpeedUp runs simulated
// time faster than wall time. docs/routing.md ("Engine model") describes it,
// its token model and its metrics.
//
// The mock is not a model: it never looks at what a prompt says, only at how
// many words it has (one word counts as one prompt token), except that its
// rerank and score endpoints rate texts by the words they share, and its
// audio endpoints describe the file they were sent. It serves one
// choice per request (n and batched prompts are ignored) and takes the fault
// settings in force when a request arrives for the whole of that request.
package mockllm
