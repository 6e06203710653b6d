//! A small control for fake providers: which outcome a provider call gets, chosen by what the
//! call names. [`super::FakeProviders`] (and so the Azure view of it) uses it; other fakes can
//! reuse it with their own outcome type.
//!
//! Decision, first match wins: the global override → an outcome set for the call's service →
//! for its target host (e.g. Azure's `resourceName`) → for its model (Azure's deployment) → for
//! its credential. `None` means "no rule": the caller falls back to its own default.

use std::collections::HashMap;

/// What a rule is keyed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The service (`"openai"`, `"azureopenai"`, ...).
    Service,
    /// The target (host) the call goes to, e.g. Azure's resource name.
    Target,
    /// The model (an Azure deployment) the call names.
    Model,
    /// The credential presented.
    Credential,
}

/// Outcome rules of one fake provider.
#[derive(Clone, Debug)]
pub struct ProviderControl<O> {
    global: Option<O>,
    rules: HashMap<(Scope, String), O>,
}

impl<O> Default for ProviderControl<O> {
    fn default() -> Self {
        ProviderControl {
            global: None,
            rules: HashMap::new(),
        }
    }
}

/// The names a call carries, in the order rules are consulted.
#[derive(Clone, Copy, Debug)]
pub struct CallKeys<'a> {
    pub service: &'a str,
    pub target: &'a str,
    pub model: &'a str,
    pub credential: &'a str,
}

impl<O: Copy> ProviderControl<O> {
    /// Override every call (`None` removes the override).
    pub fn set_global(&mut self, outcome: Option<O>) {
        self.global = outcome;
    }

    /// Give calls naming `key` in `scope` this outcome.
    pub fn set(&mut self, scope: Scope, key: &str, outcome: O) {
        self.rules.insert((scope, key.to_owned()), outcome);
    }

    /// Remove the rule for `key` in `scope`.
    pub fn clear(&mut self, scope: Scope, key: &str) {
        self.rules.remove(&(scope, key.to_owned()));
    }

    /// The outcome the rules give this call, if any.
    pub fn decide(&self, keys: CallKeys<'_>) -> Option<O> {
        let rule = |scope, key: &str| self.rules.get(&(scope, key.to_owned())).copied();
        self.global
            .or_else(|| rule(Scope::Service, keys.service))
            .or_else(|| rule(Scope::Target, keys.target))
            .or_else(|| rule(Scope::Model, keys.model))
            .or_else(|| rule(Scope::Credential, keys.credential))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_scope_wins() {
        let mut c = ProviderControl::default();
        let keys = CallKeys {
            service: "s",
            target: "r",
            model: "d",
            credential: "k",
        };
        assert_eq!(c.decide(keys), None);
        c.set(Scope::Credential, "k", 4);
        c.set(Scope::Model, "d", 3);
        assert_eq!(c.decide(keys), Some(3));
        c.set(Scope::Target, "r", 2);
        assert_eq!(c.decide(keys), Some(2));
        c.set(Scope::Service, "s", 1);
        assert_eq!(c.decide(keys), Some(1));
        c.set_global(Some(0));
        assert_eq!(c.decide(keys), Some(0));
        c.set_global(None);
        c.clear(Scope::Service, "s");
        c.clear(Scope::Target, "r");
        assert_eq!(c.decide(keys), Some(3));
    }
}
