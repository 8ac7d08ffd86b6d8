// Package anthropic serves Anthropic's Messages API (POST /v1/messages and
// /v1/messages/count_tokens, as Claude Code and the Anthropic SDKs call
// them) on top of chat completions, the way LiteLLM's adapter does, so that
// any OpenAI-compatible server (vLLM first) answers Messages clients.
//
// It translates, and does no I/O: ToChat turns a Messages request into a
// chat-completions request; FromChat turns a chat completion into a
// Messages response; a Stream turns a chat event stream into Messages
// events as the bytes arrive; FromOpenAI and FromOpenAIBody put errors in
// Anthropic's envelope; CountTokens estimates a request's input tokens.
// The proxy calls these on its request path: input is validated with gjson
// and then walked in place by a small scanner (scan.go) that decodes no
// string, since chat takes Anthropic's strings as they are; output is
// appended to the caller's buffer. A stream chunk costs about 0.5 µs and no
// allocation, a 1 MB request a few milliseconds and two allocations
// (BenchmarkStreamChunk, BenchmarkToChat).
//
// What has no equivalent in chat completions is said where it is dropped
// or refused (ToChat's doc lists it): thinking is dropped, documents and
// Anthropic's server tools are refused with an invalid_request_error
// naming the offending field.
package anthropic
