/**
 * Container health check, for the Dockerfile HEALTHCHECK and docker-compose.
 *
 * Plain JavaScript (no tsx start-up cost), run as `node deploy/healthcheck.js`.
 * Every node role runs the same image, so the script picks its target from the
 * same variables server.ts reads:
 *   - a gateway node (SERVICES unset = every service, or a list containing
 *     "api") is asked http://127.0.0.1:$PORT/api/v1/ready (PORT default 3000);
 *   - any other node is asked its small health server,
 *     http://127.0.0.1:$HEALTH_PORT/ready (server.ts opens it only when
 *     HEALTH_PORT is set and the node does not host api).
 * Exit 0 = healthy, 1 = unhealthy (Docker's convention). Whatever is printed
 * ends up in `docker inspect --format '{{json .State.Health}}' <container>`.
 */
"use strict";

const TIMEOUT_MS = 3000;

/** The URL to probe for this environment, or an error message when there is none. */
function target(env) {
	const trim = value => (value === undefined ? "" : String(value).trim());
	const services = trim(env.SERVICES).split(",").map(s => s.trim()).filter(Boolean);
	if (services.length === 0 || services.includes("api")) {
		return { url: `http://127.0.0.1:${trim(env.PORT) || "3000"}/api/v1/ready` };
	}
	const healthPort = trim(env.HEALTH_PORT);
	if (!healthPort) {
		return { error: `this node (SERVICES=${services.join(",")}) has no gateway and HEALTH_PORT is not set: nothing to probe` };
	}
	return { url: `http://127.0.0.1:${healthPort}/ready` };
}

async function check(env) {
	const t = target(env);
	if (t.error) {
		console.error(`unhealthy: ${t.error}`);
		return 1;
	}
	try {
		const res = await fetch(t.url, { signal: AbortSignal.timeout(TIMEOUT_MS), headers: { accept: "application/json" } });
		const body = (await res.text()).slice(0, 1000);
		if (res.ok) {
			console.log(`healthy: ${t.url} ${res.status}`);
			return 0;
		}
		console.error(`unhealthy: ${t.url} answered ${res.status} ${body}`);
		return 1;
	} catch (err) {
		const reason = err && err.name === "TimeoutError" ? `no answer within ${TIMEOUT_MS} ms` : (err && err.cause && err.cause.code) || (err && err.message) || String(err);
		console.error(`unhealthy: ${t.url} unreachable: ${reason}`);
		return 1;
	}
}

if (require.main === module) {
	check(process.env).then(code => process.exit(code), err => {
		console.error(`unhealthy: ${err && err.stack ? err.stack : err}`);
		process.exit(1);
	});
}

module.exports = { target, check };
