package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/maasgate/maasgate/internal/openai"
)

// Model is a deployment added through the admin API. Params and Info hold
// JSON values as encoding/json decodes them with UseNumber: numbers are
// json.Number. Secret params (SecretKeys), and an api_base that carries
// credentials, are plaintext here and encrypted in the database.
type Model struct {
	ID        string
	Name      string         // model_name
	Params    map[string]any // litellm_params
	Info      map[string]any // model_info
	CreatedAt time.Time
	UpdatedAt time.Time
}

const modelColumns = "id, model_name, litellm_params, model_info, created_at, updated_at"

// Models returns every stored model, oldest first (by created_at, then id).
func (s *Store) Models(ctx context.Context) ([]Model, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+modelColumns+" FROM models ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	defer rows.Close()
	var out []Model
	for rows.Next() {
		m, err := s.scanModel(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	return out, nil
}

// Model returns the model with the given id, or ErrNotFound.
func (s *Store) Model(ctx context.Context, id string) (Model, error) {
	row := s.db.QueryRowContext(ctx, s.rebind("SELECT "+modelColumns+" FROM models WHERE id = ?"), id)
	m, err := s.scanModel(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Model{}, fmt.Errorf("model %s: %w", openai.Clip(id), ErrNotFound)
	}
	return m, err
}

// CreateModel stores a new model and returns it as a read would. An empty
// ID gets a random UUID; CreatedAt and UpdatedAt are set to now. A model
// with the same id already stored is ErrExists, and nothing changes.
func (s *Store) CreateModel(ctx context.Context, m Model) (Model, error) {
	if m.ID == "" {
		m.ID = uuid.NewString()
	}
	m.CreatedAt = now()
	m.UpdatedAt = m.CreatedAt
	params, info, out, err := s.encodeModel(m)
	if err != nil {
		return Model{}, err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.rebind(
			"INSERT INTO models ("+modelColumns+") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"),
			m.ID, m.Name, params, info, s.timeArg(m.CreatedAt), s.timeArg(m.UpdatedAt))
		if err != nil {
			return fmt.Errorf("insert model %s: %w", openai.Clip(m.ID), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("insert model %s: %w", openai.Clip(m.ID), err)
		} else if n == 0 {
			return fmt.Errorf("model %s: %w", openai.Clip(m.ID), ErrExists)
		}
		return nil
	})
	if err != nil {
		return Model{}, err
	}
	return out, nil
}

// UpdateModel replaces the name, params and info of the stored model with
// m.ID, keeps its CreatedAt, sets UpdatedAt to now and returns it as a read
// would. An unknown id is ErrNotFound.
func (s *Store) UpdateModel(ctx context.Context, m Model) (Model, error) {
	m.UpdatedAt = now()
	params, info, out, err := s.encodeModel(m)
	if err != nil {
		return Model{}, err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, s.rebind(
			"UPDATE models SET model_name = ?, litellm_params = ?, model_info = ?, updated_at = ? WHERE id = ? RETURNING created_at"),
			m.Name, params, info, s.timeArg(m.UpdatedAt), m.ID)
		err := row.Scan(timeValue{&out.CreatedAt})
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("model %s: %w", openai.Clip(m.ID), ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update model %s: %w", openai.Clip(m.ID), err)
		}
		return nil
	})
	if err != nil {
		return Model{}, err
	}
	return out, nil
}

// DeleteModel removes the model with the given id; an unknown id is
// ErrNotFound.
func (s *Store) DeleteModel(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.rebind("DELETE FROM models WHERE id = ?"), id)
		if err != nil {
			return fmt.Errorf("delete model %s: %w", openai.Clip(id), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete model %s: %w", openai.Clip(id), err)
		} else if n == 0 {
			return fmt.Errorf("model %s: %w", openai.Clip(id), ErrNotFound)
		}
		return nil
	})
}

// encodeModel returns the JSON columns of m (secrets encrypted) and m as a
// read will return it (numbers as json.Number, maps never nil).
func (s *Store) encodeModel(m Model) (params, info []byte, out Model, err error) {
	plain, err := encodeObject(m.Params)
	if err != nil {
		return nil, nil, Model{}, fmt.Errorf("model %s: encode litellm_params: %w", openai.Clip(m.ID), err)
	}
	info, err = encodeObject(m.Info)
	if err != nil {
		return nil, nil, Model{}, fmt.Errorf("model %s: encode model_info: %w", openai.Clip(m.ID), err)
	}
	out = m
	if out.Params, err = decodeJSON[map[string]any](plain); err != nil {
		return nil, nil, Model{}, fmt.Errorf("model %s: litellm_params: %w", openai.Clip(m.ID), err)
	}
	if out.Info, err = decodeJSON[map[string]any](info); err != nil {
		return nil, nil, Model{}, fmt.Errorf("model %s: model_info: %w", openai.Clip(m.ID), err)
	}
	sealed, err := s.seal.sealMap(out.Params)
	if err != nil {
		return nil, nil, Model{}, fmt.Errorf("model %s: encrypt litellm_params.%w", openai.Clip(m.ID), err)
	}
	if params, err = encodeObject(sealed); err != nil {
		return nil, nil, Model{}, fmt.Errorf("model %s: encode litellm_params: %w", openai.Clip(m.ID), err)
	}
	return params, info, out, nil
}

type scanner interface{ Scan(dest ...any) error }

func (s *Store) scanModel(row scanner) (Model, error) {
	var m Model
	var params, info []byte
	if err := row.Scan(&m.ID, &m.Name, &params, &info, timeValue{&m.CreatedAt}, timeValue{&m.UpdatedAt}); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Model{}, err
		}
		return Model{}, fmt.Errorf("read model: %w", err)
	}
	var err error
	if m.Params, err = decodeJSON[map[string]any](params); err != nil {
		return Model{}, fmt.Errorf("model %s: decode litellm_params: %w", openai.Clip(m.ID), err)
	}
	if m.Info, err = decodeJSON[map[string]any](info); err != nil {
		return Model{}, fmt.Errorf("model %s: decode model_info: %w", openai.Clip(m.ID), err)
	}
	if m.Params == nil {
		m.Params = map[string]any{}
	}
	if m.Info == nil {
		m.Info = map[string]any{}
	}
	if err := s.seal.openMap(m.Params); err != nil {
		return Model{}, fmt.Errorf("model %s: litellm_params.%w", openai.Clip(m.ID), err)
	}
	return m, nil
}
