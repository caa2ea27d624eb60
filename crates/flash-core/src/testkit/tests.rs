pub async fn add_counts_and_added_new(_f: super::Factory) {}
