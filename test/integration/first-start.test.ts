/**
 * A newcomer's first start: the admin account, what the log says, and the
 * admin tool (npm run admin -- reset-password).
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import util from "node:util";
import { loadConfig } from "../../config";
import { startNode } from "../../server";
import { main as adminTool } from "../../tools/admin";
import { UsageError } from "../../tools/bench/cli";
import { ADMIN, httpClient, newPhone, startTestPlatform, type TestPlatform } from "../support/platform";
import { registerCabinet } from "../support/catalog";
import { freePort, spawnNode, waitFor } from "../support/processes";

jest.setTimeout(60_000);

/** Everything Moleculer's Console logger (and anything else) prints while it is installed. */
function captureConsole() {
	const lines: string[] = [];
	const spies = (["log", "info", "warn", "error", "debug"] as const).map(m =>
		jest.spyOn(console, m).mockImplementation((...args: unknown[]) => void lines.push(util.format(...args))),
	);
	return { lines, restore: () => spies.forEach(s => s.mockRestore()) };
}

const withLevel = (lines: string[], ...levels: string[]) => lines.filter(l => levels.some(level => new RegExp(`\\b${level}\\s`).test(l)));
const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "first-start-"));

function toolOutput() {
	const out: string[] = [];
	const err: string[] = [];
	return { out, err, io: { log: (t: string) => void out.push(t), error: (t: string) => void err.push(t) } };
}

const boxedPassword = (text: string) => /│ [^:]+: \S+ \/ (\S+)/.exec(text)?.[1];

describe("the admin account at start", () => {
	it("a failed first start creates no admin; the next start creates it and prints the password once", async () => {
		const dataDir = tmpDir();
		const blocker = net.createServer();
		await new Promise<void>(r => blocker.listen(0, "0.0.0.0", r));
		const taken = (blocker.address() as net.AddressInfo).port;
		const cap = captureConsole();
		try {
			await expect(startTestPlatform({ ADMIN_PASSWORD: "", MQTT_PORT: String(taken), LOG_LEVEL: "warn" }, { dataDir })).rejects.toThrow(/MQTT_PORT \d+ is already in use/);
		} finally {
			cap.restore();
			await new Promise(r => blocker.close(r));
		}
		expect(cap.lines.join("\n")).not.toMatch(/Admin account created/);

		const cap2 = captureConsole();
		let p: TestPlatform | undefined;
		try {
			p = await startTestPlatform({ ADMIN_PASSWORD: "", LOG_LEVEL: "warn" }, { dataDir });
		} finally {
			cap2.restore();
		}
		try {
			// Created now, so it did not exist after the failed start.
			expect(p.node.admin).toMatchObject({ created: true, username: "admin" });
			const password = p.node.admin!.generatedPassword!;
			const shown = cap2.lines.filter(l => l.includes("Admin account created"));
			expect(shown).toHaveLength(1);
			expect(boxedPassword(shown[0])).toBe(password);
			expect((await p.api("POST", "/api/v1/auth/login", { login: "admin", password })).status).toBe(200);
		} finally {
			await p.stop();
		}

		// Later starts: ADMIN_PASSWORD that is not the account's is reported (and not applied); the right one is not.
		for (const [adminPassword, warned] of [["not-the-admin-password-1", true], [undefined, false]] as const) {
			const cap3 = captureConsole();
			let q: TestPlatform | undefined;
			try {
				q = await startTestPlatform({ ADMIN_PASSWORD: adminPassword ?? p.node.admin!.generatedPassword!, LOG_LEVEL: "warn" }, { dataDir });
			} finally {
				cap3.restore();
			}
			try {
				expect(q.node.admin).toMatchObject({ created: false });
				const warnings = cap3.lines.filter(l => l.includes("ADMIN_PASSWORD is set but is not the password"));
				expect(warnings).toHaveLength(warned ? 1 : 0);
				if (warned) expect(warnings[0]).toContain("npm run admin -- reset-password --username admin");
				expect(cap3.lines.join("\n")).not.toMatch(/Admin account created/);
				if (warned) expect((await q.api("POST", "/api/v1/auth/login", { login: "admin", password: adminPassword })).status).toBe(401);
			} finally {
				await q.stop();
			}
		}
	});
});

describe("what the log says", () => {
	it("a sign-up logs no warning, a routine 503 one line without a stack, and each service stops once", async () => {
		const cap = captureConsole();
		let p: TestPlatform | undefined;
		try {
			p = await startTestPlatform({ LOG_LEVEL: "info" });
			const dep: Error[] = [];
			const onWarning = (w: Error) => void dep.push(w);
			process.on("warning", onWarning);

			let from = cap.lines.length;
			const reg = await p.api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "a-good-passphrase" });
			expect(reg.status).toBe(201);
			expect(reg.headers.get("location")).toBe("/api/v1/me");
			expect(withLevel(cap.lines.slice(from), "WARN", "ERROR")).toEqual([]);

			const admin = await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password });
			const cab = await registerCabinet(p.node.broker, [{ no: 1, size: "M" }]);
			from = cap.lines.length;
			const open = await p.api("POST", `/api/v1/doors/${encodeURIComponent(`${cab.cabinetId}:01`)}/open`, { reason: "log test" }, { token: admin.body.accessToken });
			expect(open).toMatchObject({ status: 503, body: { type: "CABINET_OFFLINE" } });
			const loud = withLevel(cap.lines.slice(from), "WARN", "ERROR", "FATAL");
			expect(loud).toHaveLength(1);
			expect(loud[0]).toContain("CABINET_OFFLINE");
			expect(loud[0]).not.toMatch(/\n\s+at /);
			process.off("warning", onWarning);
			expect(dep.map(w => (w as { code?: string }).code)).not.toContain("DEP0174");

			from = cap.lines.length;
			await p.stop();
			p = undefined;
			const stopped = cap.lines.slice(from).map(l => /Service '([^']+)' stopped/.exec(l)?.[1]).filter(Boolean);
			expect(stopped.length).toBeGreaterThanOrEqual(9);
			expect(new Set(stopped).size).toBe(stopped.length);
		} finally {
			cap.restore();
			await p?.stop();
		}
	});
});

describe("npm start", () => {
	it("prints the ports it serves on once, and on Ctrl-C stops every service once and frees DATA_DIR", async () => {
		const dataDir = tmpDir();
		const port = await freePort();
		const node = spawnNode("start", { LOG_LEVEL: "info", PORT: String(port), MQTT_PORT: "0", METRICS_PORT: "0", DATA_DIR: dataDir, DEMO_SEED: "false", ADMIN_PASSWORD: ADMIN.password });
		try {
			await waitFor("the banner", async () => (node.output().includes("  data ") ? true : undefined), 45_000);
			const out = node.output();
			expect(out.match(/serving: /g)).toHaveLength(1);
			expect(out).toContain(`HTTP     http://localhost:${port}/api/v1`);
			expect(out).toMatch(/MQTT     mqtt:\/\/localhost:[1-9]\d*/);
			expect(out).toMatch(/metrics  http:\/\/127\.0\.0\.1:[1-9]\d*\/metrics/);
			expect(fs.existsSync(path.join(dataDir, "platform.lock"))).toBe(true);
			node.proc.kill("SIGINT");
			expect(await node.stop()).toBe(0);
			const stopped = [...node.output().matchAll(/Service '([^']+)' stopped/g)].map(m => m[1]);
			expect(stopped).toEqual(expect.arrayContaining(["users", "api", "hardware", "doors", "orders"]));
			expect(new Set(stopped).size).toBe(stopped.length);
			expect(fs.existsSync(path.join(dataDir, "platform.lock"))).toBe(false);
		} finally {
			await node.kill9();
		}
	});
});

describe("npm run admin -- reset-password", () => {
	it("on the store: refused while a platform holds DATA_DIR; afterwards a new password, the old sessions signed out", async () => {
		const dataDir = tmpDir();
		const env = { NODE_ENV: "test", DATA_DIR: dataDir };
		let p: TestPlatform | undefined = await startTestPlatform({}, { dataDir });
		const before = await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password });
		expect(before.status).toBe(200);

		const refused = toolOutput();
		expect(await adminTool(["reset-password"], env, { out: refused.io })).toBe(1);
		expect(refused.err.join("\n")).toMatch(/A platform is using DATA_DIR .*pid \d+/);
		await p.stop();
		p = undefined;

		try {
			const done = toolOutput();
			expect(await adminTool(["reset-password", "--username", "admin"], env, { out: done.io })).toBe(0);
			const password = boxedPassword(done.out.join("\n"));
			expect(password).toMatch(/^\S{16}$/);
			expect(done.out.join("\n")).toContain("1 session(s)");

			const weak = toolOutput();
			expect(await adminTool(["reset-password", "--password", "admin-admin-1"], env, { out: weak.io })).toBe(1);
			const nobody = toolOutput();
			expect(await adminTool(["reset-password", "--username", "nobody"], env, { out: nobody.io })).toBe(1);
			expect(nobody.err.join("\n")).toContain("no account with the user name 'nobody'");
			await expect(adminTool(["reset-password", "--pasword", "x"], env)).rejects.toThrow(UsageError);

			p = await startTestPlatform({}, { dataDir });
			expect((await p.api("POST", "/api/v1/auth/refresh", { refreshToken: before.body.refreshToken })).body).toMatchObject({ type: "SESSION_REVOKED" });
			// The gateway learnt the revocation at start: the old access token is refused too.
			expect((await p.api("GET", "/api/v1/me", undefined, { token: before.body.accessToken })).status).toBe(401);
			expect((await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).status).toBe(401);
			expect((await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password })).status).toBe(200);
		} finally {
			await p?.stop();
		}
	});

	it("through the mesh: the users service resets it and the gateway refuses the old access token at once", async () => {
		const config = loadConfig({ NODE_ENV: "test", PORT: "0", MQTT_PORT: "0", METRICS: "false", LOG_LEVEL: "error", ADMIN_USERNAME: ADMIN.username, ADMIN_PASSWORD: ADMIN.password, DEMO_SEED: "false" });
		const node = await startNode(config, { dataDir: null, brokerOverrides: { transporter: "Fake", nodeID: "first-start-platform" } });
		try {
			const api = httpClient(`http://127.0.0.1:${node.ports.http}`);
			const before = await api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password });
			expect((await api("GET", "/api/v1/me", undefined, { token: before.body.accessToken })).status).toBe(200);

			const r = toolOutput();
			const code = await adminTool(["reset-password", "--password", "mesh-new-pass-77"], { NODE_ENV: "test", TRANSPORTER: "nats://127.0.0.1:1" }, { out: r.io, brokerOverrides: { transporter: "Fake" } });
			expect(r.err).toEqual([]);
			expect(code).toBe(0);
			expect(r.out.join("\n")).toContain("1 session(s)");
			expect(r.out.join("\n")).not.toContain("mesh-new-pass-77"); // chosen by the caller: not echoed

			expect((await api("GET", "/api/v1/me", undefined, { token: before.body.accessToken })).body).toMatchObject({ type: "SESSION_REVOKED" });
			expect((await api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: "mesh-new-pass-77" })).status).toBe(200);

			// Out of sight of ps: the first line of standard input.
			const meshEnv = { NODE_ENV: "test", TRANSPORTER: "nats://127.0.0.1:1" };
			const viaStdin = toolOutput();
			const stdin = Readable.from(["stdin-new-pass-88\r\n", "ignored second line\n"]);
			expect(await adminTool(["reset-password", "--password-stdin"], meshEnv, { out: viaStdin.io, stdin, brokerOverrides: { transporter: "Fake" } })).toBe(0);
			expect(viaStdin.out.join("\n")).not.toContain("stdin-new-pass-88");
			expect((await api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: "stdin-new-pass-88" })).status).toBe(200);
			await expect(adminTool(["reset-password", "--password-stdin"], meshEnv, { stdin: Readable.from([""]) })).rejects.toThrow("standard input held no password");
			await expect(adminTool(["reset-password", "--password-stdin", "--password", "x-y-z-1234"], meshEnv)).rejects.toThrow("not both");
		} finally {
			await node.stop();
		}
	});
});

describe("npm run seed", () => {
	/** The seed tool as `npm run seed` runs it: its own process, configured by the environment. */
	function runSeed(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
		return new Promise((resolve, reject) => {
			const child = spawn(process.execPath, ["--import", "tsx", "tools/seed.ts", ...args], {
				cwd: path.resolve(__dirname, "../.."),
				env: { ...process.env, NODE_ENV: "test", ...env },
				stdio: ["ignore", "pipe", "pipe"],
			});
			let out = "";
			child.stdout.on("data", d => (out += d));
			child.stderr.on("data", d => (out += d));
			child.once("error", reject);
			child.once("exit", code => resolve({ code, out }));
		});
	}

	it("refuses while a platform holds DATA_DIR; afterwards seeds it, and the platform serves the fleet", async () => {
		const dataDir = tmpDir();
		const env = { DATA_DIR: dataDir, DEMO_SEED: "false" };
		let p: TestPlatform | undefined = await startTestPlatform({}, { dataDir });
		try {
			const refused = await runSeed(["--points", "40", "--cities", "1"], env);
			expect(refused.code).toBe(1);
			expect(refused.out).toMatch(/A platform is using DATA_DIR .*pid \d+/);
			expect(fs.existsSync(path.join(dataDir, "cabinet-credentials.jsonl"))).toBe(false);
		} finally {
			await p.stop();
			p = undefined;
		}

		const seeded = await runSeed(["--points", "40", "--cities", "1"], env);
		expect(seeded.code).toBe(0);
		expect(fs.existsSync(path.join(dataDir, "platform.lock"))).toBe(false); // the seed tool's mark is gone with it
		const credentials = fs.readFileSync(path.join(dataDir, "cabinet-credentials.jsonl"), "utf8").trim().split("\n").length;

		p = await startTestPlatform({}, { dataDir });
		try {
			type Count = { count(q: object): Promise<number> };
			const catalog = (p.node.broker.getLocalService("merchants") as unknown as { repos: { points: Count; cabinets: Count } }).repos;
			expect(await catalog.points.count({})).toBe(40);
			expect(await catalog.cabinets.count({})).toBe(credentials); // a line of credentials per cabinet
		} finally {
			await p.stop();
		}
	});
});
