/**
 * fastest-validator with `$$strict: true` on every params schema: an unknown
 * field is a 422, never silently stored (API.md "Conventions"). An action may
 * still opt out by declaring `$$strict` itself.
 *
 * `number` with `convert: true` (query strings arrive as text) converts only
 * decimal numerals: fastest-validator's own conversion is `Number(value)`,
 * which reads `""` as 0, `"0x1F"` as 31, `[]` as 0 and `true` as 1.
 */
import { Validators } from "moleculer";

/** A decimal numeral as people write one: `12`, `-0.5`, `31.23`, `1e3`. */
export const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

type RuleFn = (this: unknown, rule: { schema: Record<string, unknown> }, path: string, context: unknown) => { sanitized?: boolean; source: string };

export class StrictValidator extends Validators.Fastest {
	constructor(opts?: ConstructorParameters<typeof Validators.Fastest>[0]) {
		super(opts);
		const v = (this as unknown as { validator: { rules: Record<string, RuleFn>; add(type: string, fn: RuleFn): void } }).validator;
		const numberRule = v.rules.number;
		v.add("number", function (this: unknown, rule, path, context) {
			if (rule.schema.convert !== true) return numberRule.call(this, rule, path, context);
			const inner = numberRule.call(this, { ...rule, schema: { ...rule.schema, convert: false } }, path, context);
			return {
				sanitized: true,
				source: `
					var origValue = value;
					if (typeof value === "string" && value.length <= 64 && ${DECIMAL}.test(value)) value = Number(value);
				${inner.source.replace("var origValue = value;", "")}`,
			};
		});
	}

	override compile(schema: Record<string, unknown>) {
		const strict = schema && typeof schema === "object" && !("$$root" in schema) && !("$$strict" in schema)
			? { $$strict: true, ...schema }
			: schema;
		return super.compile(strict);
	}
}
