// Drives the demo page in headless Chromium (playwright-core). Protocol with the Rust test on stdin/stdout:
// prints LIVE once the page's EventSource has received live events, waits for a RESTARTED line, then prints
// RESUMED <state> once the page has seen the RESET and new messages after the server restart.
const { chromium } = require("playwright-core");
const readline = require("readline");

const base = process.argv[2];
const lines = readline.createInterface({ input: process.stdin });
const waitLine = (expected) => new Promise((resolve) => lines.on("line", (l) => { if (l.trim() === expected) resolve(); }));

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    page.on("console", (m) => console.error("page:", m.text()));
    await page.goto(base + "/demo");
    await page.waitForFunction(() => window.__demo.events >= 3, null, { timeout: 30000 });
    const state = await page.evaluate(() => window.__demo);
    const shown = await page.locator("#card-user_user_1_referrals li").count();
    console.log("LIVE " + JSON.stringify({ state, userFeedItems: shown }));
    await waitLine("RESTARTED");
    await page.waitForFunction(() => window.__demo.resets >= 1 && window.__demo.afterReset >= 3, null, { timeout: 60000 });
    console.log("RESUMED " + JSON.stringify(await page.evaluate(() => window.__demo)));
  } finally {
    await browser.close();
    lines.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
