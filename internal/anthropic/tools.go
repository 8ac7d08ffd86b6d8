package anthropic

import "fmt"

// tools writes tools and tool_choice.
func (w *chatWriter) tools(tools, choice raw) *Error {
	if !tools.isNull() {
		if !tools.isArray() {
			return invalid("tools", "must be an array of tools")
		}
		var err *Error
		n := 0
		tools.elements(func(k int, t raw) bool {
			path := func() string { return fmt.Sprintf("tools.%d", k) }
			var typ, name, description, schema raw
			t.members(func(key string, v raw) bool {
				switch key {
				case "type":
					typ = v
				case "name":
					name = v
				case "description":
					description = v
				case "input_schema":
					schema = v
				}
				return true
			})
			if !typ.isNull() && !typ.is("custom") {
				err = unsupported(path(), typ, "server tools run at Anthropic; this gateway serves custom tools (name, description, input_schema) only")
				return false
			}
			if !name.isString() || name.inner() == "" {
				err = invalid(path()+".name", "field required: a string")
				return false
			}
			if !schema.isObject() {
				err = invalid(path()+".input_schema", "field required: a JSON schema object")
				return false
			}
			if n == 0 {
				w.b = append(w.b, `,"tools":[`...)
			} else {
				w.b = append(w.b, ',')
			}
			n++
			w.b = append(w.b, `{"type":"function","function":{"name":`...)
			w.b = append(w.b, name...)
			if description.isString() {
				w.b = append(w.b, `,"description":`...)
				w.b = append(w.b, description...)
			}
			w.b = append(w.b, `,"parameters":`...)
			w.b = append(w.b, schema...)
			w.b = append(w.b, "}}"...)
			return true
		})
		if err != nil {
			return err
		}
		if n > 0 {
			w.b = append(w.b, ']')
		}
	}
	if choice.isNull() {
		return nil
	}
	if !choice.isObject() {
		return invalid("tool_choice", "must be an object with a type")
	}
	var typ, name, noParallel raw
	choice.members(func(k string, v raw) bool {
		switch k {
		case "type":
			typ = v
		case "name":
			name = v
		case "disable_parallel_tool_use":
			noParallel = v
		}
		return true
	})
	switch {
	case typ.is("auto"):
		w.b = append(w.b, `,"tool_choice":"auto"`...)
	case typ.is("any"):
		w.b = append(w.b, `,"tool_choice":"required"`...)
	case typ.is("none"):
		w.b = append(w.b, `,"tool_choice":"none"`...)
	case typ.is("tool"):
		if !name.isString() || name.inner() == "" {
			return invalid("tool_choice.name", "field required: a string")
		}
		w.b = append(w.b, `,"tool_choice":{"type":"function","function":{"name":`...)
		w.b = append(w.b, name...)
		w.b = append(w.b, "}}"...)
	default:
		return unsupported("tool_choice", typ, `must be "auto", "any", "tool" or "none"`)
	}
	if noParallel == "true" {
		w.b = append(w.b, `,"parallel_tool_calls":false`...)
	}
	return nil
}
