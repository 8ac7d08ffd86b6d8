package usage

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Cost is the cost of a call as LiteLLM computes it from a deployment's
// input_cost_per_token and output_cost_per_token (zero when absent):
// prompt tokens at the input price plus completion tokens at the output
// price.
func Cost(inputPerToken, outputPerToken float64, prompt, completion int64) float64 {
	return float64(prompt)*inputPerToken + float64(completion)*outputPerToken
}

// FormatFloat renders f as Python's str(float) does, which is how LiteLLM
// writes costs in headers and messages: the shortest repr, in exponent
// form when the decimal exponent is below -4 or at least 16 ("1.65e-05",
// "1.23456789e+16"), and with ".0" when integral ("10.0", "1000000.0").
func FormatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // "1.65e-05"
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e // Go's exponent has at least two digits, as Python's
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

// ResponseCostHeader is the value of x-litellm-response-cost for a call
// that cost cost, and whether to send the header at all: LiteLLM omits it
// for a cost of zero.
func ResponseCostHeader(cost float64) (string, bool) {
	if cost == 0 {
		return "", false
	}
	return FormatFloat(cost), true
}

// ErrBudgetExceeded is what every *BudgetError is (errors.Is).
var ErrBudgetExceeded = fmt.Errorf("budget exceeded")

// BudgetError refuses a request whose key or team has spent its
// max_budget. Its message is LiteLLM's, word for word; the caller answers
// it as LiteLLM does, with OpenAI.
type BudgetError struct {
	// Team is the team's id when the team's budget is spent, "" when the
	// key's own is.
	Team       string
	Spend, Max float64
}

func (e *BudgetError) Error() string {
	if e.Team != "" {
		return "Budget has been exceeded! Team=" + e.Team + " Current cost: " + FormatFloat(e.Spend) + ", Max budget: " + FormatFloat(e.Max)
	}
	return "Budget has been exceeded! Current cost: " + FormatFloat(e.Spend) + ", Max budget: " + FormatFloat(e.Max)
}

// Is makes errors.Is(err, ErrBudgetExceeded) hold.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExceeded }
