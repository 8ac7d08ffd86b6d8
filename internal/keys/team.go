package keys

import (
	"errors"
	"slices"
	"time"
)

// Team is a team as stored: the fields of LiteLLM's LiteLLM_TeamTable that
// maasgate implements. Its keys may call only its models. (Its limits and
// budget are stored but not enforced yet: the admin API refuses them.)
type Team struct {
	ID       string   // team_id
	Alias    string   // team_alias; "" for none
	Models   []string // group names, aliases or access groups; empty = every model
	Metadata map[string]any
	Blocked  bool
	Members  []Member // members_with_roles

	MaxBudget      *float64
	BudgetDuration string
	BudgetResetAt  time.Time
	Spend          float64

	TPMLimit            *int64
	RPMLimit            *int64
	MaxParallelRequests *int64

	CreatedAt time.Time
	UpdatedAt time.Time
}

// Member is one entry of a team's members_with_roles.
type Member struct {
	Role   string `json:"role"` // "admin" or "user"
	UserID string `json:"user_id,omitempty"`
	Email  string `json:"user_email,omitempty"`
}

// AllTeamModels in a key's models lets the key call whatever its team may,
// as in LiteLLM.
const AllTeamModels = "all-team-models"

// Set.Check's errors for a key of a blocked team, and for a key whose team
// is not stored (a key imported without its team, or one created as its
// team was deleted).
var (
	ErrTeamBlocked = errors.New("the key's team is blocked")
	ErrTeamMissing = errors.New("the key's team does not exist")
)

// Allows reports whether the team may call name: a model group, an alias
// or an access group. A team without models may call every model.
func (t *Team) Allows(name string) bool {
	return allAccess(t.Models) || slices.Contains(t.Models, name)
}
