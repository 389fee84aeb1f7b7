package api

import (
	_ "embed"
	"encoding/json"
	"regexp"
	"strings"
)

// openAPIJSON is the API's OpenAPI document, kept in the repository
// (openapi.json) and served at /api/v1/openapi.json. TestOpenAPI checks it
// is what openAPI makes from the routes (VELO_UPDATE_OPENAPI=1 writes it).
//
//go:embed openapi.json
var openAPIJSON []byte

var pathParam = regexp.MustCompile(`\{(\w+)\}`)

// openAPI is the document the routes make.
func openAPI() ([]byte, error) {
	paths := map[string]map[string]any{}
	errorRef := map[string]any{"$ref": "#/components/schemas/Error"}
	errResp := func(d string) any {
		return map[string]any{"description": d, "content": map[string]any{"application/json": map[string]any{"schema": errorRef}}}
	}
	for _, r := range append(routes, extraRoutes...) {
		op := map[string]any{"summary": r.summary, "operationId": operationID(r)}
		if r.command != "" {
			op["description"] = "Runs velo " + r.command + "; the same rules, lock and JSON document as the command's --json."
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(r.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
		}
		props := map[string]any{}
		for _, f := range r.fields {
			if r.method == "POST" {
				props[f.name] = schemaOf(f)
			} else {
				params = append(params, map[string]any{"name": f.name, "in": "query", "description": f.help, "schema": schemaOf(f)})
			}
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.method == "POST" && r.command != "" {
			body := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
			if r.name != "" {
				body["required"] = []string{r.name}
			}
			op["requestBody"] = map[string]any{"required": r.name != "", "content": map[string]any{"application/json": map[string]any{"schema": body}}}
		}
		resps := map[string]any{
			"400": errResp("bad input: malformed JSON, an unknown field, a name or time the command refuses, a body over 64 KiB"),
			"401": errResp("missing or wrong token"),
		}
		if r.json || r.command == "" {
			resps["200"] = map[string]any{"description": "the command's JSON document (its --json); with Accept: application/x-ndjson, its steps as they happen and then {\"result\": document} or {\"error\", \"kind\", \"status\"}",
				"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{}}}}
		} else {
			resps["204"] = map[string]any{"description": "done"}
		}
		if r.full {
			resps["403"] = errResp("a read-only token, or a page session without its CSRF header")
		}
		if strings.Contains(r.path, "{") {
			resps["404"] = errResp("what the path names does not exist")
		}
		if r.full {
			resps["409"] = errResp("it exists already, or another velo holds the lock")
			resps["412"] = errResp("the state forbids it; the message says what to do first")
		}
		op["responses"] = resps
		if paths[r.path] == nil {
			paths[r.path] = map[string]any{}
		}
		paths[r.path][strings.ToLower(r.method)] = op
	}
	doc := map[string]any{
		"openapi":  "3.1.0",
		"info":     map[string]any{"title": "Velo API", "version": "1", "description": "Velo's commands over HTTP. Served by velo serve --http; every call needs Authorization: Bearer TOKEN."},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []string{}}},
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]string{"type": "http", "scheme": "bearer"}},
			"schemas": map[string]any{"Error": map[string]any{"type": "object", "required": []string{"error", "kind"},
				"properties": map[string]any{"error": map[string]string{"type": "string"}, "kind": map[string]string{"type": "string"}}}},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n'), err
}

// extraRoutes are the endpoints that run no command, for the document.
var extraRoutes = []route{
	{method: "GET", path: "/api/v1/openapi.json", summary: "This document"},
	{method: "GET", path: "/api/v1/session", summary: "The caller's role, and a page session's CSRF token for its changing calls (header X-Velo-CSRF)"},
}

func operationID(r route) string {
	id := strings.ToLower(r.method) + strings.NewReplacer("/api/v1", "", "/", "_", "{", "", "}", "").Replace(r.path)
	return id
}

func schemaOf(f field) map[string]any {
	s := map[string]any{"description": f.help}
	switch f.kind {
	case "bool":
		s["type"] = "boolean"
	case "int":
		s["type"] = "integer"
	case "strings":
		s["type"] = "array"
		s["items"] = map[string]string{"type": "string"}
	default:
		s["type"] = "string"
	}
	return s
}
