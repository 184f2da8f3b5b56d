// Custom search attributes, registered on the server (dev server: --search-attribute at start;
// a real cluster: `temporal operator search-attribute create`), kept current by every runbook.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SA_APP = defineSearchAttributeKey('RunbookApp', SearchAttributeType.KEYWORD);
export const SA_ENV = defineSearchAttributeKey('RunbookEnv', SearchAttributeType.KEYWORD);
export const SA_STEP = defineSearchAttributeKey('RunbookStep', SearchAttributeType.KEYWORD);
export const SA_AWAITING_APPROVAL = defineSearchAttributeKey('RunbookAwaitingApproval', SearchAttributeType.BOOL);

export const RUNBOOK_SEARCH_ATTRIBUTES = [SA_APP, SA_ENV, SA_STEP, SA_AWAITING_APPROVAL];
