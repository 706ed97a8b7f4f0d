package edgeguard.keycloak;

import java.util.List;

import org.keycloak.Config;
import org.keycloak.authentication.authenticators.conditional.ConditionalAuthenticator;
import org.keycloak.authentication.authenticators.conditional.ConditionalAuthenticatorFactory;
import org.keycloak.models.AuthenticationExecutionModel;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderConfigurationBuilder;

/** Registers {@link ConditionalUserRequiredAction} (META-INF/services). */
public final class ConditionalUserRequiredActionFactory implements ConditionalAuthenticatorFactory {

    /**
     * The provider id flows name in "authenticator": prefixed so that no Keycloak built-in can take it,
     * at most 36 characters (the column AUTHENTICATION_EXECUTION.AUTHENTICATOR).
     */
    public static final String PROVIDER_ID = "edgeguard-condition-required-action";
    /** Config key: the required action's alias, e.g. webauthn-register. */
    public static final String CONF_REQUIRED_ACTION = "required_action";
    /** Config key: "true" negates the result. */
    public static final String CONF_NOT = "not";

    private static final AuthenticationExecutionModel.Requirement[] REQUIREMENT_CHOICES = {
        AuthenticationExecutionModel.Requirement.REQUIRED,
        AuthenticationExecutionModel.Requirement.DISABLED,
    };

    private static final List<ProviderConfigProperty> CONFIG = ProviderConfigurationBuilder.create()
            .property()
            .name(CONF_REQUIRED_ACTION)
            .label("Required action")
            .helpText("Alias of the required action (for example webauthn-register). The condition matches when "
                    + "the user has it pending on their account and it is enabled in the realm.")
            .type(ProviderConfigProperty.STRING_TYPE)
            .add()
            .property()
            .name(CONF_NOT)
            .label("Negate output")
            .helpText("Match when the user does not have the required action pending.")
            .type(ProviderConfigProperty.BOOLEAN_TYPE)
            .defaultValue(false)
            .add()
            .build();

    @Override
    public String getId() {
        return PROVIDER_ID;
    }

    @Override
    public String getDisplayType() {
        return "Condition - user required action (edgeguard)";
    }

    @Override
    public String getHelpText() {
        return "Flow is executed only if the user has the given required action pending (and it is enabled in the realm).";
    }

    @Override
    public boolean isConfigurable() {
        return true;
    }

    @Override
    public AuthenticationExecutionModel.Requirement[] getRequirementChoices() {
        return REQUIREMENT_CHOICES;
    }

    @Override
    public boolean isUserSetupAllowed() {
        return false;
    }

    @Override
    public List<ProviderConfigProperty> getConfigProperties() {
        return CONFIG;
    }

    @Override
    public ConditionalAuthenticator getSingleton() {
        return ConditionalUserRequiredAction.SINGLETON;
    }

    @Override
    public void init(Config.Scope config) {
    }

    @Override
    public void postInit(KeycloakSessionFactory factory) {
    }

    @Override
    public void close() {
    }
}
