/**
 * fastest-validator with `$$strict: true` on every params schema: an unknown
 * field is a 422, never silently stored (API.md "Conventions"). An action may
 * still opt out by declaring `$$strict` itself.
 */
import { Validators } from "moleculer";

export class StrictValidator extends Validators.Fastest {
	override compile(schema: Record<string, unknown>) {
		const strict = schema && typeof schema === "object" && !("$$root" in schema) && !("$$strict" in schema)
			? { $$strict: true, ...schema }
			: schema;
		return super.compile(strict);
	}
}
