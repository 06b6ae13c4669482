//! rvs-proxy
