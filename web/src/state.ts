// The page's state, all of it in one place: where calls go, who is signed
// in, and what each card shows. Panels read and write it; nothing else in
// the app is mutable at module level (a keyed form keeps its own "in
// flight" flag, see panels/keyed.ts).

import type { TokenInfo } from "./auth.js";
import { paymentClient, type PaymentClient } from "./client.js";
import { loadEndpoint } from "./endpoint.js";
import type { Account, GetPaymentResponse, Hold, Transaction } from "./gen/payment/v1/payment_pb.js";

/** The accounts listed so far. */
export interface AccountsState {
  /** The owner asked for ("" for every owner, admins only). */
  owner: string;
  nextPageToken: string;
  accounts: Account[];
}

/** The history shown so far. */
export interface HistoryState {
  accountId: string;
  /** The token continuing after the last row shown; empty at the oldest entry. */
  nextPageToken: string;
  /** Rows shown so far. */
  rows: number;
  /** Cancels the stream being read. */
  abort?: AbortController;
}

/** The account being watched for new entries (WatchAccount). */
export interface WatchState {
  accountId: string;
  /** The token to resume from: after the last entry shown. */
  resumeToken: string;
  /** Entries shown since the watch began. */
  arrived: number;
  /** Stops the watch. */
  abort: AbortController;
}

export interface AppState {
  /** Where calls go. */
  endpoint: string;
  /** The client for `endpoint`, sending the signed-in person's token. */
  client: PaymentClient;
  signedIn?: TokenInfo;
  accounts?: AccountsState;
  /** Increases with each listing, so that an older answer arriving late is dropped. */
  accountsGeneration: number;
  /** The hold shown with its Capture and Void buttons. */
  currentHold?: Hold;
  /** What the last lookup found. */
  lookedUp?: GetPaymentResponse;
  /** The account whose balance the account card shows. */
  shownAccount?: string;
  history?: HistoryState;
  watch?: WatchState;
  /** The payment (or capture) the refund form returns money of. */
  refunding?: Transaction;
}

const firstEndpoint = loadEndpoint();

export const state: AppState = {
  endpoint: firstEndpoint,
  client: paymentClient(firstEndpoint, () => state.signedIn?.token),
  accountsGeneration: 0,
};

/** Sends the next calls to `endpoint`. */
export function setEndpoint(endpoint: string): void {
  state.endpoint = endpoint;
  state.client = paymentClient(endpoint, () => state.signedIn?.token);
}
