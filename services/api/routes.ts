/**
 * The route table of the gateway, read from the service schemas in this
 * code base (each action's `rest`, `auth`, `params`). Aliases and the
 * OpenAPI document are both generated from it, so neither can drift from the
 * code — and, unlike moleculer-web's `autoAliases`, a route stays known while
 * its service is down, so the client gets 503, not 404.
 */
import type { ActionSchema, ServiceSchema } from "moleculer";
import type { AccessRule } from "../../types/auth";
import { accessRuleOf } from "../../middlewares/access";

export interface RouteDef {
	method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
	/** Path below the API prefix, moleculer-web syntax (`/points/:id`). */
	path: string;
	/** Fully qualified action name, e.g. `users.login`. */
	action: string;
	auth: AccessRule;
	rateLimit?: "credentials";
	summary?: string;
	idempotent?: boolean;
	rawBody?: { headers: string[] };
	params: Record<string, unknown>;
	service: string;
}

const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE"]);

export function collectRoutes(schemas: Partial<ServiceSchema>[]): RouteDef[] {
	const routes: RouteDef[] = [];
	const seen = new Map<string, string>();
	for (const schema of schemas) {
		const base = typeof schema.settings?.rest === "string" ? schema.settings.rest.replace(/\/$/, "") : `/${schema.name}`;
		for (const [name, def] of Object.entries(schema.actions ?? {})) {
			if (typeof def !== "object" || def === null) continue;
			const action = def as ActionSchema;
			if (typeof action.rest !== "string") continue;
			const [method, path] = action.rest.trim().split(/\s+/);
			if (!METHODS.has(method) || !path?.startsWith("/")) {
				throw new Error(`${schema.name}.${name}: rest must look like "POST /path" (got "${action.rest}")`);
			}
			const full = `${base}${path}`;
			const key = `${method} ${full}`;
			if (seen.has(key)) throw new Error(`Route ${key} is declared by both ${seen.get(key)} and ${schema.name}.${name}`);
			seen.set(key, `${schema.name}.${name}`);
			routes.push({
				method: method as RouteDef["method"],
				path: full,
				action: `${schema.name}.${name}`,
				auth: accessRuleOf(action)!,
				rateLimit: action.rateLimit,
				summary: action.summary,
				idempotent: action.idempotent,
				rawBody: action.rawBody,
				params: (action.params ?? {}) as Record<string, unknown>,
				service: schema.name!,
			});
		}
	}
	// moleculer-web tries aliases in order: `/points/nearby` must come before `/points/:id`.
	return routes.sort(bySpecificity);
}

/**
 * A total order in which, wherever two paths overlap, a literal segment comes before a
 * parameter (segment by segment: literals first, then alphabetically; shorter paths first).
 */
export function bySpecificity(a: { path: string }, b: { path: string }): number {
	const sa = a.path.split("/");
	const sb = b.path.split("/");
	for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
		const pa = sa[i].startsWith(":");
		const pb = sb[i].startsWith(":");
		if (pa !== pb) return pa ? 1 : -1;
		if (!pa && sa[i] !== sb[i]) return sa[i] < sb[i] ? -1 : 1;
	}
	return sa.length - sb.length;
}
