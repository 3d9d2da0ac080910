/**
 * Embedded mode keeps its data: a user registered before a restart of the
 * process (as `npm start` runs it) can still log in afterwards, and the
 * data directory is private (0700, files 0600).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { httpClient } from "../support/platform";
import { freePort, spawnNode, waitForHttp, type NodeProcess } from "../support/processes";

jest.setTimeout(90_000);

// NeDB files are what this checks; with MONGO_URI the store is MongoDB's (db-contract.test.ts covers it).
const embedded = process.env.MONGO_URI ? describe.skip : describe;

embedded("embedded restart persistence", () => {
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-restart-"));
	fs.chmodSync(dataDir, 0o755); // as an older version left it
	let node: NodeProcess | undefined;
	afterAll(async () => {
		await node?.kill9();
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	async function start() {
		const port = await freePort();
		node = spawnNode("embedded", { PORT: String(port), MQTT_PORT: String(await freePort()), DATA_DIR: dataDir, ADMIN_PASSWORD: "restart-admin-pass" });
		await waitForHttp(`http://127.0.0.1:${port}/api/v1/ready`, s => s === 200, 30_000, node);
		return httpClient(`http://127.0.0.1:${port}`);
	}

	it("a registered user logs in after a stop and a start", async () => {
		let api = await start();
		const reg = await api("POST", "/api/v1/auth/register", { phone: "13700001111", password: "persist-pass-1", name: "持久" });
		if (reg.status !== 201) console.error(node!.output());
		expect(reg.status).toBe(201);
		expect(await node!.stop()).toBe(0);
		expect(fs.readdirSync(dataDir)).toEqual(expect.arrayContaining(["users.db", "sessions.db"]));
		// Password hashes, sessions and cabinet secret nonces: for the platform's user alone.
		const mode = (f: string) => (fs.statSync(path.join(dataDir, f)).mode & 0o777).toString(8);
		expect(mode(".")).toBe("700");
		for (const f of fs.readdirSync(dataDir).filter(f => f.endsWith(".db") || f.endsWith(".jsonl"))) expect([f, mode(f)]).toEqual([f, "600"]);

		api = await start();
		const login = await api("POST", "/api/v1/auth/login", { login: "13700001111", password: "persist-pass-1" });
		expect(login.status).toBe(200);
		expect(login.body.user).toMatchObject({ id: reg.body.user.id, name: "持久" });
		// The session issued before the restart is still valid too.
		expect((await api("POST", "/api/v1/auth/refresh", { refreshToken: reg.body.refreshToken })).status).toBe(200);
		// And the admin was created once, not again.
		expect((await api("POST", "/api/v1/auth/login", { login: "admin", password: "restart-admin-pass" })).status).toBe(200);
	});
});
