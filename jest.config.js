// Four suites: unit (pure logic), integration (whole platform in-process or as
// child processes, no outside servers), e2e (the real NATS, Redis and
// Mosquitto of the machine) and browser (chromium). `npm test` runs the first two.
// ts-jest only transpiles (isolatedModules in tsconfig.json); `npm run typecheck` is the type check.
const transform = { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] };
const common = { transform, testEnvironment: "node", moduleFileExtensions: ["ts", "js", "json"] };

module.exports = {
	// A handle left open by some suite (seen since the live-events, first-start and REPL suites landed) kept
	// Jest alive after every test had passed and hung CI: exit once the run is over. The handle itself is
	// still to be found (`npx jest --detectOpenHandles`).
	forceExit: true,
	projects: [
		{ ...common, displayName: "unit", testMatch: ["<rootDir>/test/unit/**/*.test.ts"] },
		{ ...common, displayName: "integration", testMatch: ["<rootDir>/test/integration/**/*.test.ts"] },
		{ ...common, displayName: "e2e", testMatch: ["<rootDir>/test/e2e/**/*.test.ts"] },
		// Debian's chromium driven by playwright-core: the admin map (`npm run test:browser`).
		{ ...common, displayName: "browser", testMatch: ["<rootDir>/test/browser/**/*.test.ts"] },
	],
};
