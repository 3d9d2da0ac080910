/**
 * orders: complete lifecycles per second through REST —
 *   reserve → open (deposit) → bag in → checkout → provider notification →
 *   open (pickup) → bag out
 * with simulated cabinets that answer at once and close the door right after
 * it opened. Embedded (`npm start` as a child process) and distributed (api,
 * orders, billing, hardware and doors on their own nodes over this machine's
 * NATS, Redis and Mosquitto), in one run. Per step p50/p99, and the share of
 * a lifecycle spent waiting for doors (the two opens, and the cabinet's
 * report that the bag went in or out).
 *
 * Results go to bench-results/orders.json.
 */
import { SimulatedCabinet } from "../simulator/cabinet";
import { parseFlags, positiveInt } from "./cli";
import { canConnect, freePort, Scope, waitForHttp, type Proc } from "./procs";
import { formatTable } from "./table";
import { printGoals, writeReport, type Goal } from "./report";

export const usage = `npm run bench -- orders [options]

  --seconds N      measured time per target (default 20)
  --users N        people running lifecycles at once (default 64)
  --cabinets N     simulated cabinets of 24 M doors (default 16)
  --targets LIST   embedded,distributed (default both; distributed needs NATS 4222, Redis 6379, Mosquitto 1883)`;

const STEPS = ["reserve", "openDeposit", "stored", "checkout", "pay", "paid", "openPickup", "completed"] as const;
type Step = (typeof STEPS)[number];
/** Steps that are the door's round trips (command → ack, or the cabinet's report of the bag). */
const DOOR_STEPS: Step[] = ["openDeposit", "stored", "openPickup", "completed"];
const GOAL_EMBEDDED = 300;
const ADMIN_PASSWORD = "bench-orders-admin-1";

interface Result {
	target: string;
	lifecycles: number;
	perSec: number;
	errors: number;
	steps: Record<Step, { p50: number; p99: number }>;
	doorShare: number;
}

async function http(base: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
	const res = await fetch(base + path, {
		method, headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const text = await res.text();
	return { status: res.status, body: text ? JSON.parse(text) : null };
}

const quantile = (xs: number[], q: number) => {
	if (!xs.length) return 0;
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

async function runTarget(target: string, base: string, mqttUrl: string, o: { seconds: number; users: number; cabinets: number }): Promise<Result> {
	const admin = (await http(base, "POST", "/api/v1/auth/login", { login: "admin", password: ADMIN_PASSWORD })).body.accessToken;
	const A = (m: string, p: string, b?: unknown) => http(base, m, p, b, admin);
	await A("POST", "/api/v1/cities", { code: "BN", name: "基准城", lat: 30, lng: 120 });
	const merchant = (await A("POST", "/api/v1/merchants", { name: "基准商户", contactPhone: "+86 21 5555 0303", commissionRate: 0.1 })).body;
	const point = (await A("POST", "/api/v1/points", { merchantId: merchant.id, cityCode: "BN", name: "基准点", address: "基准路1号", lat: 30, lng: 120 })).body;
	const doors = Array.from({ length: 24 }, (_, i) => ({ no: i + 1, size: "M" as const }));
	const sims: SimulatedCabinet[] = [];
	for (let i = 0; i < o.cabinets; i++) {
		const cab = (await A("POST", "/api/v1/cabinets", { pointId: point.id, doors })).body;
		const sim = new SimulatedCabinet({ cabinetId: cab.cabinet.id, secret: cab.credentials.password, doors, mqttUrl, heartbeatSec: 30, autoCloseMs: 0 });
		sim.on("error", () => undefined);
		await sim.start();
		sims.push(sim);
	}
	process.stdout.write(`  ${target}: ${o.cabinets} cabinets online, signing up ${o.users} people…`);
	const tokens = await Promise.all(Array.from({ length: o.users }, (_, i) => http(base, "POST", "/api/v1/auth/register", { phone: `1390000${String(i).padStart(4, "0")}`, password: "bench-orders-pass-1" }).then(r => r.body.accessToken as string)));
	process.stdout.write(" running\n");

	const times: Record<Step, number[]> = Object.fromEntries(STEPS.map(s => [s, []])) as never;
	let done = 0;
	let errors = 0;
	const errorKinds = new Map<string, number>();
	let measuring = false;
	let stop = false;

	/** Polls the order as an app would, backing off from 20 ms to 160 ms (a poll is a request the platform serves too). */
	async function until(token: string, id: string, status: string, maxMs = 10_000) {
		const end = Date.now() + maxMs;
		for (let wait = 20; ; wait = Math.min(wait * 2, 160)) {
			const s = (await http(base, "GET", `/api/v1/orders/${id}`, undefined, token)).body?.status;
			if (s === status) return;
			if (Date.now() > end) throw new Error(`order ${id} stuck ${s} (wanted ${status})`);
			await new Promise(r => setTimeout(r, wait));
		}
	}

	async function person(token: string) {
		while (!stop) {
			const t: Partial<Record<Step, number>> = {};
			const timed = async <T>(step: Step, fn: () => Promise<T>): Promise<T> => {
				const t0 = performance.now();
				const v = await fn();
				t[step] = performance.now() - t0;
				return v;
			};
			try {
				const order = await timed("reserve", async () => {
					const r = await http(base, "POST", "/api/v1/orders", { pointId: point.id, size: "M" }, token);
					if (r.status !== 201) throw new Error(`reserve ${r.status} ${r.body?.type}`);
					return r.body;
				});
				await timed("openDeposit", () => http(base, "POST", `/api/v1/orders/${order.id}/open`, undefined, token).then(r => { if (r.status !== 200) throw new Error(`open ${r.status} ${r.body?.type}`); }));
				await timed("stored", () => until(token, order.id, "stored"));
				const pay = await timed("checkout", async () => (await http(base, "POST", `/api/v1/orders/${order.id}/checkout`, undefined, token)).body.payment);
				await timed("pay", () => http(base, "POST", `/api/v1/payments/${pay.id}/sandbox-pay`, {}, token));
				await timed("paid", () => until(token, order.id, "paid"));
				await timed("openPickup", () => http(base, "POST", `/api/v1/orders/${order.id}/open`, undefined, token).then(r => { if (r.status !== 200) throw new Error(`pickup ${r.status} ${r.body?.type}`); }));
				await timed("completed", () => until(token, order.id, "completed"));
				if (measuring) {
					done++;
					for (const s of STEPS) times[s].push(t[s]!);
				}
			} catch (err) {
				if (measuring) {
					errors++;
					const kind = (err as Error).message.replace(/ord_\S+/g, "ord_…");
					errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
				}
				await new Promise(r => setTimeout(r, 20));
			}
		}
	}

	const workers = tokens.map(person);
	await new Promise(r => setTimeout(r, 3000)); // warm-up
	measuring = true;
	const t0 = Date.now();
	await new Promise(r => setTimeout(r, o.seconds * 1000));
	measuring = false;
	const elapsed = (Date.now() - t0) / 1000;
	stop = true;
	await Promise.all(workers);
	await Promise.all(sims.map(s => s.stop().catch(() => undefined)));
	const twice = sims.reduce((n, s) => n + [...s.unlocksByCmd.values()].filter(c => c > 1).length, 0);
	if (twice) throw new Error(`${twice} commands unlocked a door twice`);

	const steps = Object.fromEntries(STEPS.map(s => [s, { p50: quantile(times[s], 0.5), p99: quantile(times[s], 0.99) }])) as Result["steps"];
	const total = STEPS.reduce((n, s) => n + times[s].reduce((a, b) => a + b, 0), 0);
	const door = DOOR_STEPS.reduce((n, s) => n + times[s].reduce((a, b) => a + b, 0), 0);
	if (errorKinds.size) console.log(`  ${target} errors: ${[...errorKinds].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([k, n]) => `${n}× ${k}`).join("; ")}`);
	return { target, lifecycles: done, perSec: done / elapsed, errors, steps, doorShare: total ? door / total : 0 };
}

const common = {
	NODE_ENV: "test", LOG_LEVEL: "error", ADMIN_PASSWORD, DEMO_SEED: "false", HEARTBEAT_SEC: "30",
	RATE_LIMIT_IP: "100000000", RATE_LIMIT_USER: "100000000", RATE_LIMIT_AUTH: "100000000",
	// One pace slot per account: a person's sign-in is not what is measured.
	LOGIN_SLOW_AFTER: "1000", LOGIN_LOCK_AFTER: "1000",
};

async function embedded(o: { seconds: number; users: number; cabinets: number }): Promise<Result> {
	const scope = new Scope();
	try {
		const [port, mqttPort] = [await freePort(), await freePort()];
		const proc = scope.startTs("embedded", "server.ts", { ...common, PORT: String(port), MQTT_PORT: String(mqttPort), DATA_DIR: await scope.tempDir("bench-orders-") });
		await waitForHttp([proc], `http://127.0.0.1:${port}/api/v1/ready`, { timeoutMs: 60_000 });
		return await runTarget("embedded", `http://127.0.0.1:${port}`, `mqtt://127.0.0.1:${mqttPort}`, o);
	} finally {
		await scope.close();
	}
}

async function distributed(o: { seconds: number; users: number; cabinets: number }): Promise<Result> {
	for (const [name, port] of [["NATS", 4222], ["Redis", 6379], ["Mosquitto", 1883]] as const) {
		if (!(await canConnect("127.0.0.1", port))) throw new Error(`${name} is not running on 127.0.0.1:${port}`);
	}
	const scope = new Scope();
	try {
		const ns = `bench-orders-${process.pid}`;
		const mesh = { ...common, TRANSPORTER: "nats://127.0.0.1:4222", REDIS_URL: "redis://127.0.0.1:6379", MQTT_URL: "mqtt://127.0.0.1:1883", NAMESPACE: ns, MQTT_SHARE_GROUP: ns, CABINET_SECRET_KEY: "bench-orders-cabinet-secret-key-0123456789" };
		const port = await freePort();
		const procs: Proc[] = [];
		procs.push(scope.startTs("api", "server.ts", { ...mesh, SERVICES: "api,users,merchants,geo", PORT: String(port), DATA_DIR: await scope.tempDir("bench-orders-api-") }));
		for (const role of ["orders", "billing", "hardware", "doors"]) procs.push(scope.startTs(role, "server.ts", { ...mesh, SERVICES: role, DATA_DIR: await scope.tempDir(`bench-orders-${role}-`) }));
		await waitForHttp(procs, `http://127.0.0.1:${port}/api/v1/ready`, { timeoutMs: 60_000 });
		// The gateway is ready before every other node has joined: wait for an order route to answer.
		for (let i = 0; i < 200 && (await http(`http://127.0.0.1:${port}`, "GET", "/api/v1/orders")).status === 503; i++) await new Promise(r => setTimeout(r, 100));
		return await runTarget("distributed", `http://127.0.0.1:${port}`, "mqtt://127.0.0.1:1883", o);
	} finally {
		await scope.close();
	}
}

export async function main(argv: string[]): Promise<number> {
	const f = parseFlags(argv, { seconds: { type: "string" }, users: { type: "string" }, cabinets: { type: "string" }, targets: { type: "string" } });
	const o = { seconds: positiveInt("seconds", f.seconds, 20), users: positiveInt("users", f.users, 64), cabinets: positiveInt("cabinets", f.cabinets, 16) };
	const targets = (f.targets ?? "embedded,distributed").split(",").map(s => s.trim());
	const results: Result[] = [];
	const failures: string[] = [];
	for (const t of targets) {
		try {
			results.push(t === "embedded" ? await embedded(o) : await distributed(o));
		} catch (err) {
			failures.push(`${t}: ${(err as Error).message}`);
		}
	}

	console.log(`\nComplete lifecycles (reserve → open → bag in → checkout → notify → open → bag out), ${o.users} people, ${o.cabinets} cabinets × 24 doors, ${o.seconds} s:\n`);
	console.log(formatTable(
		[{ title: "target" }, { title: "lifecycles/s", align: "right" }, { title: "errors", align: "right" }, { title: "door share", align: "right" }, ...STEPS.map(s => ({ title: `${s} p50/p99 ms`, align: "right" as const }))],
		results.map(r => [r.target, r.perSec.toFixed(1), String(r.errors), `${(r.doorShare * 100).toFixed(0)} %`, ...STEPS.map(s => `${r.steps[s].p50.toFixed(1)} / ${r.steps[s].p99.toFixed(1)}`)]),
	));
	const emb = results.find(r => r.target === "embedded");
	const goals: Goal[] = [{ goal: `embedded ≥ ${GOAL_EMBEDDED} complete lifecycles/s`, pass: !!emb && emb.perSec >= GOAL_EMBEDDED, value: emb ? `${emb.perSec.toFixed(1)}/s` : "not run" }];
	const dist = results.find(r => r.target === "distributed");
	if (dist) goals.push({ goal: "distributed (reported)", pass: true, value: `${dist.perSec.toFixed(1)}/s` });
	printGoals("Goals", goals);
	return writeReport("orders", { parameters: o, results, goals, failures });
}
