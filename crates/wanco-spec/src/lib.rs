//! spec runner (being written)
