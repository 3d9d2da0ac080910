/**
 * PROTOCOL.md "Access control" on a real Mosquitto: our own instance of this
 * machine's broker binary with the development config of deploy/mosquitto
 * (its password file filled for two cabinets and the platform, and the ACL
 * file as shipped). A wrong password is refused at CONNECT, a cabinet cannot
 * read another cabinet's commands nor publish into another cabinet's topics.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { freePort, waitFor } from "../support/processes";
import { canConnect } from "../../tools/bench/procs";

jest.setTimeout(60_000);
const MOSQUITTO = "/usr/sbin/mosquitto";
const ROOT = path.resolve(__dirname, "../..");
const run = fs.existsSync(MOSQUITTO) && fs.existsSync("/usr/bin/mosquitto_passwd") ? describe : describe.skip;

run("topic ACLs on a real Mosquitto (deploy/mosquitto)", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mosq-acl-"));
	const users = { platform: "platform-pw", cab_A1: "secret-a", cab_B2: "secret-b" };
	let broker: ChildProcess;
	let url: string;
	const clients: MqttClient[] = [];

	const connect = (username: string, password: string) =>
		new Promise<MqttClient>((resolve, reject) => {
			const c = mqtt.connect(url, { clientId: username, username, password, reconnectPeriod: 0 });
			clients.push(c);
			c.once("connect", () => resolve(c));
			c.once("error", reject);
		});

	beforeAll(async () => {
		// Mosquitto started as root runs as user "mosquitto": it must be able to read these.
		fs.chmodSync(dir, 0o755);
		const passwd = path.join(dir, "passwd");
		fs.writeFileSync(passwd, "");
		for (const [u, p] of Object.entries(users)) execFileSync("/usr/bin/mosquitto_passwd", ["-b", passwd, u, p]);
		fs.chmodSync(passwd, 0o644);
		const port = await freePort();
		const shipped = fs.readFileSync(path.join(ROOT, "deploy/mosquitto/mosquitto.conf"), "utf8");
		const conf = shipped
			.replace(/^listener .*$/m, `listener ${port} 127.0.0.1`)
			.replace(/^password_file .*$/m, `password_file ${passwd}`)
			.replace(/^acl_file .*$/m, `acl_file ${path.join(ROOT, "deploy/mosquitto/acl")}`);
		fs.writeFileSync(path.join(dir, "mosquitto.conf"), conf, { mode: 0o644 });
		broker = spawn(MOSQUITTO, ["-c", path.join(dir, "mosquitto.conf")], { stdio: "ignore" });
		url = `mqtt://127.0.0.1:${port}`;
		await waitFor("mosquitto", async () => ((await canConnect("127.0.0.1", port)) ? true : undefined), 10_000);
	});
	afterAll(async () => {
		for (const c of clients) c.end(true);
		broker?.kill("SIGTERM");
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("refuses a wrong password", async () => {
		await expect(connect("cab_A1", "wrong")).rejects.toThrow(/Not authorized|Bad username/i);
	});

	it("delivers a cabinet only its own commands, and the platform only the real cabinet's reports", async () => {
		const platform = await connect("platform", users.platform);
		const a = await connect("cab_A1", users.cab_A1);
		const b = await connect("cab_B2", users.cab_B2);
		const seenByA: string[] = [];
		const seenByB: string[] = [];
		const seenByPlatform: string[] = [];
		a.on("message", t => seenByA.push(t));
		b.on("message", t => seenByB.push(t));
		platform.on("message", (t, p) => seenByPlatform.push(`${t} ${p}`));
		await a.subscribeAsync("lockers/cab_A1/cmd", { qos: 1 });
		// Mosquitto grants the subscription but delivers nothing the ACL denies.
		await b.subscribeAsync("lockers/cab_A1/cmd", { qos: 1 });
		await b.subscribeAsync("lockers/#", { qos: 1 });
		await platform.subscribeAsync("lockers/+/state", { qos: 1 });

		await platform.publishAsync("lockers/cab_A1/cmd", "cmd-for-a", { qos: 1 });
		await b.publishAsync("lockers/cab_A1/state", "forged-by-b", { qos: 1 }); // denied: dropped by the broker
		await b.publishAsync("lockers/cab_A1/cmd", "forged-cmd-by-b", { qos: 1 });
		await a.publishAsync("lockers/cab_A1/state", "real-from-a", { qos: 1 });

		await waitFor("the platform to get A's state", async () => (seenByPlatform.includes("lockers/cab_A1/state real-from-a") ? true : undefined), 5000);
		await waitFor("A to get its command", async () => (seenByA.length >= 1 ? true : undefined), 5000);
		// Round trip through the broker after everything above: anything B could see has arrived by now.
		await b.subscribeAsync("lockers/cab_B2/cmd", { qos: 1 });
		await platform.publishAsync("lockers/cab_B2/cmd", "cmd-for-b", { qos: 1 });
		await waitFor("B to get its own command", async () => (seenByB.includes("lockers/cab_B2/cmd") ? true : undefined), 5000);

		expect(seenByPlatform).toEqual(["lockers/cab_A1/state real-from-a"]);
		expect(seenByA).toEqual(["lockers/cab_A1/cmd"]); // not B's forged command
		expect(seenByB).toEqual(["lockers/cab_B2/cmd"]);
	});
});
