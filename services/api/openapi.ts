/**
 * OpenAPI 3.0 document generated from the route table: paths from `rest`,
 * request schemas from the actions' fastest-validator `params`, security
 * from `auth`, success answers from the table in responses.ts.
 */
import type { RouteDef } from "./routes";
import { RESPONSES, RESPONSE_COMPONENTS, type ResponseSpec } from "./responses";

type JsonSchema = Record<string, unknown>;

/** Expand fastest-validator shorthand ("string|min:3|optional") into an object rule. */
function expandRule(rule: unknown): Record<string, any> {
	if (typeof rule === "string") {
		const [type, ...mods] = rule.split("|");
		const out: Record<string, any> = { type };
		for (const m of mods) {
			const [k, v] = m.split(":");
			out[k] = v === undefined ? true : v === "true" ? true : v === "false" ? false : isNaN(Number(v)) ? v : Number(v);
		}
		return out;
	}
	if (Array.isArray(rule)) return { type: "multi", rules: rule };
	return (rule ?? { type: "any" }) as Record<string, any>;
}

export function ruleToJsonSchema(rawRule: unknown): { schema: JsonSchema; optional: boolean } {
	const r = expandRule(rawRule);
	const optional = !!r.optional || r.default !== undefined;
	let s: JsonSchema;
	switch (r.type) {
		case "string":
			s = { type: "string" };
			if (r.min !== undefined) s.minLength = r.min;
			if (r.max !== undefined) s.maxLength = r.max;
			if (r.length !== undefined) s.minLength = s.maxLength = r.length;
			if (r.pattern) s.pattern = String(r.pattern instanceof RegExp ? r.pattern.source : r.pattern);
			if (r.enum) s.enum = r.enum;
			break;
		case "email": s = { type: "string", format: "email" }; break;
		case "url": s = { type: "string", format: "uri" }; break;
		case "date": s = { type: "string", format: "date-time" }; break;
		case "uuid": s = { type: "string", format: "uuid" }; break;
		case "number":
			s = { type: r.integer ? "integer" : "number" };
			if (r.min !== undefined) s.minimum = r.min;
			if (r.max !== undefined) s.maximum = r.max;
			if (r.positive) s.exclusiveMinimum = 0;
			break;
		case "boolean": s = { type: "boolean" }; break;
		case "enum": s = { enum: r.values }; break;
		case "equal": s = { enum: [r.value] }; break;
		case "array":
			s = { type: "array" };
			if (r.items) s.items = ruleToJsonSchema(r.items).schema;
			if (r.min !== undefined) s.minItems = r.min;
			if (r.max !== undefined) s.maxItems = r.max;
			if (r.unique) s.uniqueItems = true;
			break;
		case "object":
			s = r.props || r.properties ? paramsToJsonSchema(r.props ?? r.properties) : { type: "object" };
			break;
		case "multi":
			s = { oneOf: (r.rules as unknown[]).map(x => ruleToJsonSchema(x).schema) };
			break;
		default:
			s = {};
	}
	if (r.default !== undefined) s.default = r.default;
	if (r.description) s.description = r.description;
	return { schema: s, optional };
}

/** A params object (strict: unknown fields are rejected) as a JSON schema. */
export function paramsToJsonSchema(params: Record<string, unknown>): JsonSchema {
	const properties: Record<string, JsonSchema> = {};
	const required: string[] = [];
	for (const [name, rule] of Object.entries(params)) {
		if (name.startsWith("$$")) continue;
		const { schema, optional } = ruleToJsonSchema(rule);
		properties[name] = schema;
		if (!optional) required.push(name);
	}
	const out: JsonSchema = { type: "object", properties, additionalProperties: false };
	if (required.length) out.required = required;
	return out;
}

const ERROR_RESPONSES: Record<string, string> = {
	"400": "Malformed request", "401": "Missing, invalid or expired access token", "403": "Not allowed for this account",
	"404": "Not found", "409": "The current state does not allow it", "413": "Request body too large",
	"415": "Body not JSON (Content-Type, charset or Content-Encoding)", "422": "Invalid input (VALIDATION_ERROR lists the fields)",
	"429": "Rate limited (see Retry-After)", "503": "A service behind the gateway is unavailable",
};

/** A route's success answer from responses.ts; without an entry, a generic object (flagged `x-response-undocumented`). */
function successResponse(r: RouteDef): Record<string, unknown> {
	const spec: ResponseSpec | undefined = RESPONSES[r.action];
	if (!spec) {
		// Actions named create…/register answer 201 Created (they set it themselves at run time).
		const created = r.method === "POST" && /^(create|register)/.test(r.action.split(".")[1] ?? "");
		return { [created ? "201" : "200"]: { description: created ? "Created" : "OK", "x-response-undocumented": true, content: { "application/json": { schema: { type: "object" } } } } };
	}
	if (spec.status === 204 || !spec.schema) return { [spec.status]: { description: spec.description } };
	return { [spec.status]: { description: spec.description, content: { [spec.contentType ?? "application/json"]: { schema: spec.schema } } } };
}

export function buildOpenApi(routes: RouteDef[], opts: { prefix: string; title: string; version: string }): JsonSchema {
	const paths: Record<string, Record<string, unknown>> = {};
	for (const r of routes) {
		const path = `${opts.prefix}${r.path}`.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
		const pathParams = [...r.path.matchAll(/:([A-Za-z0-9_]+)/g)].map(m => m[1]);
		const body = paramsToJsonSchema(Object.fromEntries(Object.entries(r.params).filter(([k]) => !pathParams.includes(k))));
		const parameters: unknown[] = pathParams.map(name => ({ name, in: "path", required: true, schema: { type: "string" } }));
		const op: Record<string, unknown> = {
			operationId: r.action,
			summary: r.summary ?? r.action,
			tags: [r.service],
			"x-moleculer-action": r.action,
			"x-access": r.auth,
		};
		if (r.method === "GET" || r.method === "DELETE") {
			const props = (body.properties ?? {}) as Record<string, JsonSchema>;
			const required = (body.required ?? []) as string[];
			for (const [name, schema] of Object.entries(props)) parameters.push({ name, in: "query", required: required.includes(name), schema });
		} else if (Object.keys((body.properties ?? {}) as object).length || r.method === "POST") {
			op.requestBody = { required: !!(body.required as string[] | undefined)?.length, content: { "application/json": { schema: body } } };
		}
		if (parameters.length) op.parameters = parameters;
		if (r.auth !== "public") op.security = [{ bearerAuth: [] }];
		const responses: Record<string, unknown> = successResponse(r);
		for (const [code, description] of Object.entries(ERROR_RESPONSES)) {
			if (r.auth === "public" && (code === "401" || code === "403")) continue;
			responses[code] = { description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
		}
		op.responses = responses;
		(paths[path] ??= {})[r.method.toLowerCase()] = op;
	}
	return {
		openapi: "3.0.3",
		info: { title: opts.title, version: opts.version },
		servers: [{ url: "/" }],
		paths,
		components: {
			securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
			schemas: {
				...RESPONSE_COMPONENTS,
				Error: {
					type: "object",
					required: ["name", "message", "code", "type"],
					properties: {
						name: { type: "string" }, message: { type: "string" }, code: { type: "integer" },
						type: { type: "string" }, data: {},
					},
				},
			},
		},
	};
}
