// Drives the demo page in headless Chromium (playwright-core). Protocol with the Rust test on stdin/stdout:
// prints LIVE <state> once the page shows live updates (leaderboard rows with rank arrows, trending items, the demo
// user's counters and notifications), waits for a RESTARTED line, then prints RESUMED <state> once the page has
// reconnected by itself, shown the RESET and received new messages after the server restart.
const { chromium } = require("playwright-core");
const readline = require("readline");

const base = process.argv[2];
const lines = readline.createInterface({ input: process.stdin });
const waitLine = (expected) => new Promise((resolve) => lines.on("line", (l) => { if (l.trim() === expected) resolve(); }));

// What the page shows, read from the DOM.
const shown = () => {
  const digits = (el) => Number((el && el.textContent || "").replace(/[^0-9]/g, "")) || 0;
  return {
    state: window.__demo,
    conn: document.getElementById("conn-text").textContent,
    userFeedItems: document.querySelectorAll("#feed li.n").length,
    feedText: (document.querySelector("#feed li.n .text") || {}).textContent || "",
    resetNotes: document.querySelectorAll("#feed li.system").length,
    clicks: digits(document.querySelector('#counters dd[data-k="clicks"]')),
    boardRows: document.querySelectorAll("#board tbody tr").length,
    arrows: document.querySelectorAll("#board .move.up, #board .move.down").length,
    trendItems: document.querySelectorAll("#trend-1h li:not(.empty)").length,
    progressBars: document.querySelectorAll('#progress [role="progressbar"]').length,
    // Payloads carry markup (`<b>`, `<img onerror>`): it must show up as text, never as elements.
    injected: document.querySelectorAll("main img, #feed .text b b, #trend-1h .name *").length,
  };
};

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    page.on("console", (m) => console.error("page:", m.text()));
    page.on("pageerror", (e) => console.error("page error:", e.message));
    await page.goto(base + "/demo?user=user-1");
    await page.waitForFunction(() => window.__demo.events >= 10
      && document.querySelectorAll("#feed li.n").length > 0
      && document.querySelectorAll("#board .move.up, #board .move.down").length > 0
      && /[1-9]/.test(document.querySelector('#counters dd[data-k="clicks"]').textContent), null, { timeout: 30000 });
    console.log("LIVE " + JSON.stringify(await page.evaluate(shown)));
    await waitLine("RESTARTED");
    await page.waitForFunction(() => window.__demo.resets >= 1 && window.__demo.afterReset >= 3
      && /[1-9]/.test(document.querySelector('#counters dd[data-k="clicks"]').textContent), null, { timeout: 60000 });
    console.log("RESUMED " + JSON.stringify(Object.assign(await page.evaluate(shown), await page.evaluate(() => window.__demo))));
  } finally {
    await browser.close();
    lines.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
