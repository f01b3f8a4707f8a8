//! GetPayment and ListAccounts: reads through the indexes.

use super::clock::now_ms;
use super::layout::{
    AccountsItem, Item, LISTED, LISTED_INDEX, OWNER_INDEX, StoredRecord, s, sdk_error,
};
use super::records::describe;
use super::shards::account_from;
use super::{Account, Caller, Found, Ledger, LedgerError};
use crate::domain::{AccountsPage, Listing, PaymentRef};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

impl Ledger {
    /// The payment, hold or refund a reference names, for its sender's
    /// owner, its recipient's owner or an admin; NOT_FOUND for anyone else,
    /// as for one that does not exist. A fenced key is NOT_FOUND with
    /// reason KEY_FENCED for its sender's owner and admins (see
    /// [`super::fence`]).
    pub async fn get_payment(
        &self,
        reference: &PaymentRef,
        caller: &Caller,
    ) -> Result<Found, LedgerError> {
        let record = self.find_record(reference).await?;
        self.shown(reference, record, caller).await
    }

    /// What `caller` is shown of `record`, found by `reference`.
    pub(super) async fn shown(
        &self,
        reference: &PaymentRef,
        record: Option<StoredRecord>,
        caller: &Caller,
    ) -> Result<Found, LedgerError> {
        let not_found = || LedgerError::PaymentNotFound {
            what: "payment, hold or refund",
            name: describe(reference),
        };
        let Some(record) = record else {
            return Err(not_found());
        };
        let owns = |facts: Option<super::layout::AccountFacts>| {
            facts.is_some_and(|f| f.owner == caller.sub)
        };
        let visible = caller.admin
            || match &record {
                // Only who may fence a key learns that it is fenced.
                StoredRecord::Fence(fence) => owns(self.facts(&fence.sender_id).await?),
                _ => {
                    let (sender_id, recipient_id) = record.parties();
                    let (sender, recipient) =
                        tokio::try_join!(self.facts(sender_id), self.facts(recipient_id))?;
                    owns(sender) || owns(recipient)
                }
            };
        if !visible {
            return Err(not_found());
        }
        Ok(match record {
            StoredRecord::Transfer {
                idempotency_key,
                payment,
                refunded_minor,
            } => Found::Transfer {
                idempotency_key,
                payment,
                refunded_minor,
            },
            StoredRecord::Hold(hold) => Found::Hold {
                hold: hold.view(now_ms()),
                capture: hold.capture(),
                refunded_minor: hold.refunded_minor,
            },
            StoredRecord::Fence(fence) => {
                return Err(LedgerError::FencedNotFound {
                    sender_id: fence.sender_id,
                    key: fence.idempotency_key,
                });
            }
        })
    }

    /// A page of accounts, ordered by id, from the owner index (or the
    /// all-accounts index), then read with strong consistency. Returns the
    /// accounts and the id to continue after, if there may be more.
    pub async fn list_accounts(
        &self,
        page: &AccountsPage,
    ) -> Result<(Vec<Account>, Option<String>), LedgerError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.accounts)
            // One more than a page: a page that is exactly full then says
            // there is no next page, instead of leading to an empty one.
            .limit(i32::try_from(page.page_size + 1).unwrap_or(i32::MAX));
        let (partition_attribute, partition) = match &page.listing {
            Listing::All => {
                query = query
                    .index_name(LISTED_INDEX)
                    .key_condition_expression("listed = :p");
                ("listed", LISTED.to_owned())
            }
            Listing::Owner(owner) => {
                query = query
                    .index_name(OWNER_INDEX)
                    .key_condition_expression("#o = :p")
                    .expression_attribute_names("#o", "owner");
                ("owner", owner.clone())
            }
        };
        query = query.expression_attribute_values(":p", s(&partition));
        if let Some(after) = &page.after {
            let start: Item = Item::from([
                ("account_id".to_owned(), s(after.as_str())),
                (partition_attribute.to_owned(), s(&partition)),
            ]);
            query = query.set_exclusive_start_key(Some(start));
        }
        let output = query
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        let mut ids: Vec<String> = output
            .items()
            .iter()
            .filter_map(|item| match item.get("account_id") {
                Some(aws_sdk_dynamodb::types::AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        // More when the extra one came, or when DynamoDB stopped early at
        // its 1 MB per query.
        let page_size = usize::try_from(page.page_size).unwrap_or(usize::MAX);
        let more = ids.len() > page_size || output.last_evaluated_key().is_some();
        ids.truncate(page_size);
        let mut accounts = Vec::with_capacity(ids.len());
        for item in self.read_accounts_items(&ids).await? {
            if let AccountsItem::Account(facts, state) = item {
                self.known.remember(&facts);
                self.known.observe(&facts.account_id, 0, &state);
                accounts.push(if facts.shards > 1 {
                    self.snapshot(&facts).await?
                } else {
                    account_from(&facts, std::iter::once(&state))
                });
            }
        }
        accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        let next = if more { ids.last().cloned() } else { None };
        Ok((accounts, next))
    }
}
