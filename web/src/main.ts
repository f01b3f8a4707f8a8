// The page: each card is a panel in panels/ (over the DOM helper in dom.ts,
// with the page's state in state.ts); this wires them up and starts.

import "./style.css";
import { setupAccounts } from "./panels/accounts.js";
import { setupBalance } from "./panels/balance.js";
import { setupHistory } from "./panels/history.js";
import { setupHolds } from "./panels/holds.js";
import { setupLookup } from "./panels/lookup.js";
import { setupOpen } from "./panels/open.js";
import { setupPay } from "./panels/pay.js";
import { setupRefund } from "./panels/refund.js";
import { renderSignedIn, resumeSession, setupSession, useEndpoint } from "./panels/session.js";
import { setupWatch } from "./panels/watch.js";
import { state } from "./state.js";

setupSession();
setupOpen();
const pay = setupPay();
setupAccounts();
const hold = setupHolds();
setupLookup();
setupBalance();
setupHistory();
setupWatch();
setupRefund();

useEndpoint(state.endpoint);
resumeSession();
renderSignedIn();
pay.renderKey();
hold.renderKey();
