/**
 * What every benchmark ends with: its goals as PASS/MISS lines, and a JSON
 * file under bench-results/ with the machine, the parameters, the results
 * and whether the run was valid.
 */
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "./procs";

export interface Goal {
	goal: string;
	pass: boolean;
	value: string;
}

export function printGoals(title: string, goals: readonly Goal[]): void {
	console.log(`\n${title}:`);
	for (const g of goals) console.log(`  ${g.pass ? "PASS" : "MISS"}  ${g.goal}: ${g.value}`);
}

/**
 * Writes bench-results/<benchmark>.json and reports the failures that make the
 * numbers invalid; answers the process exit code (1 when any).
 */
export async function writeReport(
	benchmark: string,
	body: { parameters: unknown; results: unknown; goals: readonly Goal[]; failures: readonly string[] },
): Promise<number> {
	const cpus = os.cpus();
	const file = path.join(REPO_ROOT, "bench-results", `${benchmark}.json`);
	await mkdir(path.dirname(file), { recursive: true });
	await writeFile(file, JSON.stringify({
		benchmark,
		date: new Date().toISOString(),
		machine: { cpus: cpus.length, model: cpus[0]?.model, node: process.version, platform: `${os.platform()} ${os.release()}`, arch: os.arch() },
		parameters: body.parameters,
		results: body.results,
		goals: body.goals,
		valid: body.failures.length === 0,
		failures: body.failures,
	}, null, "\t") + "\n");
	console.log(`\nwrote ${path.relative(process.cwd(), file) || file}`);

	if (body.failures.length) {
		console.error(`\nFAILED: the numbers above are not valid:\n  ${body.failures.join("\n  ")}`);
		return 1;
	}
	return 0;
}
