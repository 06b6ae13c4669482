//! rvs-core
