//! The tables' key schemas and indexes (template.yaml declares the same; a
//! test checks it), creating them for DynamoDB Local, and the Put of a new
//! ledger item.

use super::attributes::Item;
use super::errors::{build_error, sdk_error};
use super::keys::{LISTED_INDEX, OWNER_INDEX, TXID_INDEX};
use crate::ledger::{Ledger, LedgerError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, Put, ScalarAttributeType,
};

/// A table's indexes: (index name, [(attribute, HASH|RANGE)]).
pub type IndexSchemas = &'static [(&'static str, &'static [(&'static str, &'static str)])];

impl Ledger {
    /// The key schema of each table: (table name, [(attribute, HASH|RANGE)]).
    /// All key attributes are strings. template.yaml must declare exactly
    /// this (a test checks it), and the indexes of [`Self::index_schemas`].
    pub fn key_schemas(&self) -> [(&str, &'static [(&'static str, &'static str)]); 2] {
        [
            (&self.tables.accounts, &[("account_id", "HASH")]),
            (&self.tables.ledger, &[("pk", "HASH"), ("sk", "RANGE")]),
        ]
    }

    /// The global secondary indexes of each table, in the order of
    /// [`Self::key_schemas`]: (index name, [(attribute, HASH|RANGE)]), all
    /// with string keys and a KEYS_ONLY projection (whatever is found
    /// through them is then read from the table with strong consistency).
    pub fn index_schemas(&self) -> [IndexSchemas; 2] {
        [
            &[
                (OWNER_INDEX, &[("owner", "HASH"), ("account_id", "RANGE")]),
                (LISTED_INDEX, &[("listed", "HASH"), ("account_id", "RANGE")]),
            ],
            &[(TXID_INDEX, &[("record_txid", "HASH")])],
        ]
    }

    /// Creates both tables, with their indexes, if they are missing (for
    /// DynamoDB Local and tests; deployed tables come from template.yaml).
    pub async fn create_tables(&self) -> Result<(), LedgerError> {
        let key_element = |name: &str, key_type: &str| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(key_type))
                .build()
                .map_err(build_error)
        };
        for ((table, keys), indexes) in self.key_schemas().into_iter().zip(self.index_schemas()) {
            let mut request = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            let mut attributes: Vec<&str> = Vec::new();
            for (name, key_type) in keys {
                request = request.key_schema(key_element(name, key_type)?);
                attributes.push(name);
            }
            for (index, index_keys) in indexes {
                let mut gsi = GlobalSecondaryIndex::builder()
                    .index_name(*index)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    );
                for (name, key_type) in *index_keys {
                    gsi = gsi.key_schema(key_element(name, key_type)?);
                    if !attributes.contains(name) {
                        attributes.push(name);
                    }
                }
                request = request.global_secondary_indexes(gsi.build().map_err(build_error)?);
            }
            for name in attributes {
                request = request.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(build_error)?,
                );
            }
            match request.send().await {
                Ok(_) => tracing::info!(table, "created table"),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_in_use_exception()) =>
                {
                    tracing::debug!(table, "table exists")
                }
                Err(err) => return Err(sdk_error("CreateTable", err)),
            }
        }
        Ok(())
    }

    /// A Put of a new ledger item (an entry or a payment record).
    pub(in crate::ledger) fn put_new(&self, item: Item) -> Result<Put, LedgerError> {
        Put::builder()
            .table_name(&self.tables.ledger)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .build()
            .map_err(build_error)
    }
}
