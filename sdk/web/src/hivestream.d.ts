/** An identity alias: priority 0 is the highest. */
export interface Alias {
  priority: number;
  tag: string;
  id: string;
}

export interface Options {
  /** The collector's base URL, e.g. "https://collect.news.example". */
  url: string;
  /** An ingest key whose allowed origins include this page's origin. */
  key?: string;
  /** Events per request (default 20). */
  batchSize?: number;
  /** Milliseconds between sends of queued events (default 2000). */
  flushInterval?: number;
  /** Milliseconds between engagement reports (default 10000). */
  engagementInterval?: number;
  /** A session ends after this many milliseconds without an event (default 30 minutes). */
  sessionTimeout?: number;
  /** Aliases known before the visitor is identified: events are sent by alias until then. */
  aliases?: Alias[];
  /** Track clicks on links as `LinkClick` events (default true). */
  trackClicks?: boolean;
  /** Prefix of the cookie and localStorage keys (default "hs"). */
  prefix?: string;
  /** `false`: collect nothing until `consent(true)` (default true). */
  consent?: boolean;
  /** Longest wait between retries, in milliseconds (default 60000). */
  maxBackoff?: number;
}

export interface Stats {
  queued: number;
  sent: number;
  dropped: number;
  retries: number;
}

export interface Tracker {
  /** Queues an event; returns its event_id (null without consent). */
  track(name: string, properties?: Record<string, unknown>): string | null;
  /** Starts a page view (new view_id) and queues a `Pageview`. */
  page(properties?: Record<string, unknown>): string | null;
  /**
   * Links aliases to this visitor; resolves to the user id used from now on, or to null without consent (also
   * when consent is withdrawn while it is pending). Rejects on a 4xx that retrying cannot fix.
   */
  identify(aliases: Alias[]): Promise<string | null>;
  /** Gives or withdraws consent; withdrawing clears the queue and the stored ids, and stops all sending. */
  consent(given: boolean): void;
  /** Sends queued events now. */
  flush(): Promise<void>;
  stats(): Stats;
  /** The visitor's user id (null without consent). */
  userId(): string | null;
  sessionId(): string | null;
  viewId(): string | null;
  /** Removes the tracker's listeners and timers (the next init() does it too). */
  stop(): void;
}

export function init(options: Options): Tracker;
