// Package usage is the gateway's accounting: the spend of virtual keys and
// teams, their budgets, and the daily usage roll-ups an operator bills
// from (docs/litellm-keys.md §2, §3, §6 and §1.13).
//
// A Ledger counts in memory. Record, on the request path once a response
// is done, adds the request's cost to its key and team and its tokens and
// outcome to the day's row for (key, model); CheckBudget, before any
// upstream call, refuses a key whose live spend has reached its
// max_budget, or whose team's has passed its own, with LiteLLM's
// budget_exceeded error (BudgetError). Neither does I/O: both take one
// mutex for a few map lookups, and Record allocates only for the first
// request of a key, team and (key, model) each day.
//
// # Sharing and persistence
//
// Live spend is the stored spend of the key or team, as loaded, plus what
// was recorded since. With Redis, each replica adds what it records to one
// counter per key (and team) and budget period every SyncInterval (0.5 s)
// and reads the totals back, so a replica sees the others' spend within
// about a second, and a budget spent on one is refused on all. Without
// Redis, or while it is down, each replica counts its own spend over the
// stored spend, which its flushes read back (so the others' flushed spend
// arrives within a FlushInterval or two); the budget can then be
// overshot by what the other replicas spend in that time.
//
// Run writes to the store every FlushInterval (10 s, LiteLLM's
// PROXY_BATCH_WRITE_AT), in one transaction per flush: the spend
// increments of keys and teams and the day rows, never one write per
// request. Spend flushes do not notify the other replicas (that would
// make each reload every key). A failed flush keeps its amounts for the
// next one. When Run's context ends (the gateway's SIGTERM path, after
// the requests in flight are done) it flushes what remains, so a shutdown
// loses nothing. A crash (SIGKILL, power loss) loses what this replica
// recorded since its last successful flush: at most one FlushInterval of
// its spend and usage (more only while the store is failing).
//
// # Budget resets
//
// A key or team with a budget_duration has its spend reset to zero when
// its budget_reset_at passes, and the next budget_reset_at computed with
// LiteLLM's calendar-aligned rule (keys.Duration.NextReset): in memory at
// that instant, so a request just after it is measured against the new
// period only, and in the store by the next flush, whose one statement
// resets the row only if no other replica did (a compare on
// budget_reset_at) and adds the new period's amounts. With Options.Keys,
// keys and teams nobody uses are reset on schedule too.
package usage
