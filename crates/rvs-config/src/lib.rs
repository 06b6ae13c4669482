//! rvs-config
