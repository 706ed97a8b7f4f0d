package edgeguard.keycloak;

import java.util.Map;

import org.jboss.logging.Logger;
import org.keycloak.authentication.AuthenticationFlowContext;
import org.keycloak.authentication.authenticators.conditional.ConditionalAuthenticator;
import org.keycloak.models.AuthenticatorConfigModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.RequiredActionProviderModel;
import org.keycloak.models.UserModel;

/**
 * Condition - user required action: true when the user has the configured
 * required action pending on their account (set by an administrator through
 * the admin API or the admin console) and that required action is enabled in
 * the realm; with "not", the opposite.
 *
 * A required action that is disabled in the realm never runs after the flow,
 * so it does not count as pending: a flow that lets a user through only to
 * run the action afterwards must not let them through when it would not run.
 * A missing or empty configuration never matches (with "not": always
 * matches), so a sub-flow guarded by "not" fails closed.
 *
 * Only the user's own required actions count, not the ones an authenticator
 * adds to the authentication session during the flow.
 */
public final class ConditionalUserRequiredAction implements ConditionalAuthenticator {

    static final ConditionalUserRequiredAction SINGLETON = new ConditionalUserRequiredAction();

    private static final Logger LOG = Logger.getLogger(ConditionalUserRequiredAction.class);

    @Override
    public boolean matchCondition(AuthenticationFlowContext context) {
        AuthenticatorConfigModel model = context.getAuthenticatorConfig();
        Map<String, String> config = model == null || model.getConfig() == null ? Map.of() : model.getConfig();
        String alias = config.get(ConditionalUserRequiredActionFactory.CONF_REQUIRED_ACTION);
        if (alias == null || alias.isBlank()) {
            LOG.warnf("%s: no required action configured; the condition does not match",
                    ConditionalUserRequiredActionFactory.PROVIDER_ID);
        }
        boolean not = Boolean.parseBoolean(config.get(ConditionalUserRequiredActionFactory.CONF_NOT));
        return pending(context.getRealm(), context.getUser(), alias) != not;
    }

    /** pending reports whether user has the enabled required action alias on their account. */
    static boolean pending(RealmModel realm, UserModel user, String alias) {
        if (user == null || alias == null || alias.isBlank()) {
            return false;
        }
        RequiredActionProviderModel action = realm.getRequiredActionProviderByAlias(alias);
        if (action == null || !action.isEnabled()) {
            return false;
        }
        return user.getRequiredActionsStream().anyMatch(alias::equals);
    }

    @Override
    public void action(AuthenticationFlowContext context) {
        // a condition has no form
    }

    @Override
    public boolean requiresUser() {
        return true;
    }

    @Override
    public void setRequiredActions(KeycloakSession session, RealmModel realm, UserModel user) {
        // a condition sets up nothing
    }

    @Override
    public void close() {
        // stateless
    }
}
